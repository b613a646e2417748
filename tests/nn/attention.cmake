tfm_add_test(test_attention_host SOURCES nn/test_attention_host.cpp)
tfm_add_test(test_ops_host SOURCES nn/test_ops_host.cpp)
