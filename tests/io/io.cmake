# Safetensors reader/writer: round trips of every dtype, metadata, and the validation errors.
tfm_add_test(test_safetensors SOURCES io/test_safetensors.cpp)
