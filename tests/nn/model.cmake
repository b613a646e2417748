# The model: finite-difference gradients (double) of every variant, PyTorch golden fixtures,
# invariants.
tfm_add_test(test_model_grad SOURCES nn/test_model_grad.cpp TIMEOUT 600)
