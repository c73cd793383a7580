# Record batch decoders (cluster/src/log/record_batch.cpp) under libFuzzer: only the batch code,
# its CRC and the error category are compiled, no Asio.
faultline_fuzz_target(record_batch_fuzz
  SOURCES
    ${PROJECT_SOURCE_DIR}/cluster/src/log/record_batch.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/log/crc32c.cpp
    ${PROJECT_SOURCE_DIR}/cluster/src/errc.cpp
  INCLUDES
    ${PROJECT_SOURCE_DIR}/cluster/include
    ${PROJECT_SOURCE_DIR}/cluster/src
  DEPS fmt::fmt)
