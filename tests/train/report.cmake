# Training progress, metrics log and loss plot (tfm/train/report.hpp); the log needs nlohmann/json.
if(TFM_TEXT_ENABLED)
  tfm_add_test(test_report SOURCES train/test_report.cpp)
  target_link_libraries(test_report PRIVATE tfm::text)
endif()
