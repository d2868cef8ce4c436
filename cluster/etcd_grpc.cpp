#include "cluster/etcd_grpc.hpp"

namespace keygate::cluster::grpc {

namespace {

// ---- writing: protobuf's wire format (varints, tags, length-delimited fields) ----

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void tag(std::string& out, uint32_t field, uint32_t wire_type) {
  varint(out, (uint64_t{field} << 3) | wire_type);
}

void bytes_field(std::string& out, uint32_t field, std::string_view bytes) {
  tag(out, field, 2);
  varint(out, bytes.size());
  out.append(bytes);
}

// An int64 as protobuf's int64 (two's complement in a varint). `always`: written even when
// zero, as a oneof member must be (proto3 leaves out only a plain field's default).
void int_field(std::string& out, uint32_t field, int64_t v, bool always = false) {
  if (v == 0 && !always) return;
  tag(out, field, 0);
  varint(out, static_cast<uint64_t>(v));
}

// ---- reading ----

struct Reader {
  std::string_view in;
  size_t at = 0;
  bool bad = false;

  bool done() const { return at >= in.size() || bad; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= in.size()) break;
      const auto b = static_cast<uint8_t>(in[at++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    bad = true;
    return 0;
  }

  // The next field: its number and wire type; a length-delimited field's bytes in `bytes`,
  // a varint's value in `value`. Fixed-width fields are skipped over (etcd's messages here
  // have none).
  bool next(uint32_t& field, uint64_t& value, std::string_view& bytes) {
    if (done()) return false;
    const uint64_t key = varint();
    field = static_cast<uint32_t>(key >> 3);
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
      case 5: {
        const size_t width = (key & 7) == 1 ? 8 : 4;
        if (in.size() - at < width) bad = true;
        at += width;
        break;
      }
      case 2: {
        const uint64_t n = varint();
        if (bad || n > in.size() - at) {
          bad = true;
          return false;
        }
        bytes = in.substr(at, n);
        at += n;
        break;
      }
      default:
        bad = true;
    }
    return !bad;
  }
};

// Calls fn(field, varint value, bytes) for each field of a message in turn; false when the
// message is malformed or fn says so.
template <typename Fn>
bool each_field(std::string_view message, Fn&& fn) {
  Reader r{message};
  uint32_t field;
  uint64_t value = 0;
  std::string_view bytes;
  while (r.next(field, value, bytes))
    if (!fn(field, value, bytes)) return false;
  return !r.bad;
}

// ResponseHeader (rpc.proto): cluster_id = 1, member_id = 2, revision = 3, raft_term = 4.
bool decode_header(std::string_view message, Header& h) {
  return each_field(message, [&](uint32_t f, uint64_t v, std::string_view) {
    if (f == 1) h.cluster_id = v;
    if (f == 3) h.revision = static_cast<int64_t>(v);
    return true;
  });
}

// KeyValue (kv.proto): key = 1, create_revision = 2, mod_revision = 3, version = 4,
// value = 5, lease = 6.
bool decode_kv(std::string_view message, KeyValue& kv) {
  return each_field(message, [&](uint32_t f, uint64_t v, std::string_view b) {
    if (f == 1) kv.key.assign(b);
    if (f == 2) kv.create_revision = static_cast<int64_t>(v);
    if (f == 3) kv.mod_revision = static_cast<int64_t>(v);
    if (f == 5) kv.value.assign(b);
    return true;
  });
}

// The length in a gRPC message's 5-byte prefix (a flag byte, then big-endian 32 bits).
uint32_t message_length(std::string_view prefixed) {
  const auto byte = [&](size_t i) { return uint32_t{static_cast<uint8_t>(prefixed[i])}; };
  return byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
}

}  // namespace

// RangeRequest (rpc.proto): key = 1, range_end = 2, limit = 3, revision = 4,
// keys_only = 8, count_only = 9.
std::string encode_range(std::string_view key, std::string_view range_end, int64_t revision,
                         int64_t limit, bool count_only, bool keys_only) {
  std::string out;
  bytes_field(out, 1, key);
  if (!range_end.empty()) bytes_field(out, 2, range_end);
  int_field(out, 3, limit);
  int_field(out, 4, revision);
  int_field(out, 8, keys_only);
  int_field(out, 9, count_only);
  return out;
}

// TxnRequest: compare = 1, success = 2, failure = 3 (each a RequestOp: request_range = 1,
// request_put = 2, request_delete_range = 3). Compare: result = 1 (EQUAL = 0), target = 2
// (CREATE = 1, MOD = 2), key = 3, then the oneof create_revision = 5 | mod_revision = 6.
// PutRequest: key = 1, value = 2, lease = 3. DeleteRangeRequest: key = 1, range_end = 2.
std::string encode_txn(const std::vector<Compare>& compares, const std::vector<Op>& success) {
  std::string out, inner, op;
  for (const Compare& c : compares) {
    const bool mod = c.target == Compare::Target::mod;
    inner.clear();
    int_field(inner, 2, mod ? 2 : 1);
    bytes_field(inner, 3, c.key);
    int_field(inner, mod ? 6 : 5, c.revision, /*always=*/true);
    bytes_field(out, 1, inner);
  }
  for (const Op& o : success) {
    inner.clear();
    bytes_field(inner, 1, o.key);
    if (o.kind == Op::Kind::put) {
      bytes_field(inner, 2, o.value);
      int_field(inner, 3, o.lease);
    } else if (!o.range_end.empty()) {
      bytes_field(inner, 2, o.range_end);
    }
    op.clear();
    bytes_field(op, o.kind == Op::Kind::put ? 2 : 3, inner);
    bytes_field(out, 2, op);
  }
  for (const Compare& c : compares) {
    op.clear();
    bytes_field(op, 1, encode_range(c.key, {}, 0, 0, false, /*keys_only=*/true));
    bytes_field(out, 3, op);
  }
  return out;
}

// RangeResponse: header = 1, kvs = 2, more = 3, count = 4.
bool decode_range(std::string_view bytes, Header& header, RangeResult& out, int64_t& count) {
  out.kvs.clear();
  out.more = false;
  count = 0;
  const bool ok = each_field(bytes, [&](uint32_t f, uint64_t v, std::string_view b) {
    if (f == 1) return decode_header(b, header);
    if (f == 2) return decode_kv(b, out.kvs.emplace_back());
    if (f == 3) out.more = v != 0;
    if (f == 4) count = static_cast<int64_t>(v);
    return true;
  });
  out.revision = header.revision;
  return ok;
}

// TxnResponse: header = 1, succeeded = 2, responses = 3 (ResponseOp: response_range = 1).
bool decode_txn(std::string_view bytes, const std::vector<Compare>& compares, Header& header,
                TxnResult& out) {
  out.succeeded = false;
  out.failed.clear();
  std::vector<std::string_view> responses;
  if (!each_field(bytes, [&](uint32_t f, uint64_t v, std::string_view b) {
        if (f == 1) return decode_header(b, header);
        if (f == 2) out.succeeded = v != 0;
        if (f == 3) responses.push_back(b);
        return true;
      }))
    return false;
  out.revision = header.revision;
  if (out.succeeded) return true;
  for (std::string_view response : responses) {
    const size_t i = out.failed.size();
    if (i == compares.size()) break;
    RangeResult range;
    Header h;
    int64_t n = 0;
    bool ranged = false;
    if (!each_field(response,
                    [&](uint32_t f, uint64_t, std::string_view b) {
                      if (f == 1) ranged = decode_range(b, h, range, n);
                      return f != 1 || ranged;
                    }) ||
        !ranged)
      return false;
    const int64_t create = range.kvs.empty() ? 0 : range.kvs[0].create_revision;
    const int64_t mod = range.kvs.empty() ? 0 : range.kvs[0].mod_revision;
    const Compare& c = compares[i];
    out.failed.push_back((c.target == Compare::Target::mod ? mod : create) != c.revision);
  }
  if (out.failed.size() != compares.size()) out.failed.clear();  // unknown: all may have failed
  return true;
}

// WatchRequest: create_request = 1. WatchCreateRequest: key = 1, range_end = 2,
// start_revision = 3.
std::string encode_watch_create(std::string_view key, std::string_view range_end,
                                int64_t start_revision) {
  std::string create;
  bytes_field(create, 1, key);
  if (!range_end.empty()) bytes_field(create, 2, range_end);
  int_field(create, 3, start_revision);
  std::string out;
  bytes_field(out, 1, create);
  return out;
}

// WatchResponse: header = 1, watch_id = 2, created = 3, canceled = 4, compact_revision = 5,
// cancel_reason = 6, events = 11. Event (kv.proto): type = 1 (PUT = 0, DELETE = 1), kv = 2.
bool decode_watch(std::string_view bytes, WatchBatch& out, bool& created) {
  Header header;
  out = {};
  created = false;
  const bool ok = each_field(bytes, [&](uint32_t f, uint64_t v, std::string_view b) {
    if (f == 1) return decode_header(b, header);
    if (f == 3) created = v != 0;
    if (f == 4) out.canceled = v != 0;
    if (f == 5) out.compact_revision = static_cast<int64_t>(v);
    if (f != 11) return true;
    WatchEvent& e = out.events.emplace_back();
    return each_field(b, [&](uint32_t ef, uint64_t ev, std::string_view eb) {
      if (ef == 1) e.deleted = ev == 1;
      return ef != 2 || decode_kv(eb, e.kv);
    });
  });
  out.revision = header.revision;
  return ok;
}

Next next_message(std::string_view buffer, size_t& consumed, std::string_view& message) {
  const std::string_view rest = buffer.substr(consumed);
  if (rest.empty()) return Next::more;
  if (rest[0] != 0) return Next::bad;  // compressed: keygate asks for no compression
  if (rest.size() < 5) return Next::more;
  const uint32_t n = message_length(rest);
  if (n > kMaxMessage) return Next::bad;
  if (rest.size() - 5 < n) return Next::more;
  message = rest.substr(5, n);
  consumed += 5 + n;
  return Next::message;
}

std::string frame(std::string_view message) {
  std::string out(5, '\0');
  const auto n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  out.append(message);
  return out;
}

bool unframe(std::string_view body, std::string_view& message) {
  if (body.size() < 5 || body[0] != 0) return false;
  const uint32_t n = message_length(body);
  if (body.size() - 5 != n) return false;
  message = body.substr(5);
  return true;
}

}  // namespace keygate::cluster::grpc
