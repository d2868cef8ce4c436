# The fuzz targets and the libraries each one needs: read by tests/fuzz/CMakeLists.txt
# (libFuzzer builds) and tests/CMakeLists.txt (the corpus replay in every build).
set(KEYGATE_FUZZ_TARGETS http_parser key_format persistence x509 query server tls etcd_grpc)
set(KEYGATE_FUZZ_LIBS_http_parser keygate_net)
set(KEYGATE_FUZZ_LIBS_key_format keygate_core)
set(KEYGATE_FUZZ_LIBS_persistence keygate_persistence keygate_core)
set(KEYGATE_FUZZ_LIBS_x509 keygate_core)
set(KEYGATE_FUZZ_LIBS_query keygate_handlers keygate_core)
set(KEYGATE_FUZZ_LIBS_server keygate_handlers keygate_persistence keygate_net keygate_core)
set(KEYGATE_FUZZ_LIBS_tls keygate_net)
set(KEYGATE_FUZZ_LIBS_etcd_grpc keygate_etcd_grpc)
