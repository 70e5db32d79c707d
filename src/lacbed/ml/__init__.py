"""Neural surrogates (PyTorch; optional extra ``lacbed[ml]``). The only subpackage importing torch."""
