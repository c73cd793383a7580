# The wire protocol's frame decoders (cluster/src/wire), including the metadata-log records that
# travel inside FetchMetadataLog responses.
set(cluster_dir ${PROJECT_SOURCE_DIR}/cluster)
faultline_fuzz_target(wire_fuzz
  SOURCES ${cluster_dir}/src/wire/codec.cpp ${cluster_dir}/src/shared_bytes.cpp
          ${cluster_dir}/src/controller/metadata.cpp
          ${cluster_dir}/src/errc.cpp ${cluster_dir}/src/config.cpp
  INCLUDES ${cluster_dir}/include
  DEPS fmt::fmt Boost::headers)
