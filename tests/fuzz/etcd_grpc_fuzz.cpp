// Fuzz target: what etcd sends back over gRPC, as cluster/etcd_grpc.cpp reads it (a
// RangeResponse, a TxnResponse, a stream of WatchResponses split anywhere). Whatever the
// bytes, never a crash or a read past them (ASan), and the stream reader never claims
// more bytes than it was given.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/etcd_grpc.hpp"

using namespace keygate::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  grpc::Header header;
  RangeResult range;
  int64_t count = 0;
  (void)grpc::decode_range(bytes, header, range, count);
  const std::vector<Compare> compares{{Compare::Target::mod, "a", 5},
                                      {Compare::Target::create, "b", 0}};
  TxnResult txn;
  if (grpc::decode_txn(bytes, compares, header, txn) && !txn.failed.empty() &&
      txn.failed.size() != compares.size())
    std::abort();  // said which compares failed, but not for every one
  std::string_view message;
  (void)grpc::unframe(bytes, message);
  // The watch's stream in two parts, cut where the first byte says.
  const size_t cut = size ? data[0] % (size + 1) : 0;
  std::string buffer;
  for (std::string_view part : {bytes.substr(0, cut), bytes.substr(cut)}) {
    buffer.append(part);
    size_t consumed = 0;
    while (grpc::next_message(buffer, consumed, message) == grpc::Next::message) {
      if (consumed > buffer.size()) std::abort();
      WatchBatch batch;
      bool created = false;
      (void)grpc::decode_watch(message, batch, created);
    }
    buffer.erase(0, consumed);
  }
  return 0;
}
