// etcd's gRPC messages, on the wire, for the calls keygate makes on its write, load and apply
// paths (KV.Range, KV.Txn, Watch.Watch): encoded and decoded by hand from etcd's rpc.proto
// and kv.proto (the field numbers are cited where they are used), without protobuf's
// library or code generator. The JSON gateway that keygate used for them spent most of
// etcd's CPU turning JSON into these messages and back (perf/RESULTS.md, "Issue 36"); the
// rare calls (leases, status) stay on the gateway.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/etcd_client.hpp"

namespace keygate::cluster::grpc {

// RangeRequest; `count_only` asks for the count alone, `keys_only` for no values.
std::string encode_range(std::string_view key, std::string_view range_end, int64_t revision,
                         int64_t limit, bool count_only, bool keys_only = false);
// TxnRequest: `compares` all EQUAL; on success `success`; on failure a keys-only range of
// every compared key (so the answer says which compares failed).
std::string encode_txn(const std::vector<Compare>& compares, const std::vector<Op>& success);

struct Header {
  uint64_t cluster_id = 0;
  int64_t revision = 0;
};

// False when `bytes` is not the message (a truncated or malformed field).
bool decode_range(std::string_view bytes, Header& header, RangeResult& out, int64_t& count);
// WatchRequest{create_request{key, range_end, start_revision}}.
std::string encode_watch_create(std::string_view key, std::string_view range_end,
                                int64_t start_revision);
// WatchResponse; `created` is the answer that the watch now exists (no events).
bool decode_watch(std::string_view bytes, WatchBatch& out, bool& created);

// `failed`: for each compare, whether it failed, from the failure branch's ranges.
bool decode_txn(std::string_view bytes, const std::vector<Compare>& compares, Header& header,
                TxnResult& out);

// The largest message keygate takes from etcd: far above anything etcd sends it (a range is
// 2,000 keys at most, a watch message one transaction of at most --max-request-bytes), so
// that a member or a network that sends a length of 4 GiB, or bytes without end, is refused
// rather than buffered.
inline constexpr size_t kMaxMessage = size_t{256} << 20;

// The messages of a stream, as they arrive, taken off the front of `buffer` from
// `consumed` on: `message` is the next one whole; `more` is not whole yet; `bad` is a
// compressed message or one longer than kMaxMessage.
enum class Next { message, more, bad };
Next next_message(std::string_view buffer, size_t& consumed, std::string_view& message);

// A unary call's body: the message behind gRPC's 5-byte prefix (uncompressed, length).
std::string frame(std::string_view message);
// The message of a unary answer; false unless `body` is exactly one uncompressed message.
// `message` points into `body`.
bool unframe(std::string_view body, std::string_view& message);

}  // namespace keygate::cluster::grpc
