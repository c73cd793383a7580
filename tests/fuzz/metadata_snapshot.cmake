# The metadata snapshot decoder (cluster/src/controller/metadata.cpp): what a broker or a voter
# decodes from a FetchMetadataLog answer or an InstallSnapshot request.
set(cluster_dir ${PROJECT_SOURCE_DIR}/cluster)
faultline_fuzz_target(metadata_snapshot_fuzz
  SOURCES ${cluster_dir}/src/controller/metadata.cpp ${cluster_dir}/src/errc.cpp
          ${cluster_dir}/src/config.cpp
  INCLUDES ${cluster_dir}/include
  DEPS fmt::fmt Boost::headers)
