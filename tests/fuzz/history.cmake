# The JSONL history parser of the checker (checker/src/history.cpp and nothing else).
faultline_fuzz_target(history_fuzz
  SOURCES ${PROJECT_SOURCE_DIR}/checker/src/history.cpp
  INCLUDES ${PROJECT_SOURCE_DIR}/checker/include
  DEPS nlohmann_json::nlohmann_json fmt::fmt)
