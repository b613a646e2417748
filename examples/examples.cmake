tfm_add_example(tfm_main SOURCES tfm_main.cpp)
