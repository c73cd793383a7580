# The Kafka wire protocol codec and record batch conversion (cluster/src/kafka) under libFuzzer:
# only the kafka sources, the internal batch code they convert to, its CRC and the error category.
faultline_fuzz_target(kafka_fuzz
  SOURCES
    ${PROJECT_SOURCE_DIR}/cluster/src/kafka/protocol.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/kafka/records.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/log/record_batch.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/log/crc32c.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/errc.cpp
  INCLUDES
    ${PROJECT_SOURCE_DIR}/cluster/include
    ${PROJECT_SOURCE_DIR}/cluster/src
  DEPS fmt::fmt)
