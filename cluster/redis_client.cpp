#include "cluster/redis_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace keygate::cluster {

using Clock = std::chrono::steady_clock;
using core::Unexpected;

namespace {

constexpr size_t kMaxBulkBytes = 64u << 20;       // no reply keygate asks for comes near
constexpr int64_t kMaxArrayElements = 1'000'000;  // (ZRANGE pages are 10,000 at most)

std::string percent_decode(std::string_view s, bool& ok) {
  std::string out;
  ok = true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size() ||
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr != s.data() + i + 3) {
      ok = false;
      return {};
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

}  // namespace

std::string RedisUrl::redacted() const {
  std::string s = tls ? "rediss://" : "redis://";
  if (!user.empty() || !password.empty()) s += user + (password.empty() ? "@" : ":***@");
  s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  s += ":" + std::to_string(port);
  if (db) s += "/" + std::to_string(db);
  return s;
}

core::Expected<RedisUrl, std::string> parse_redis_url(std::string_view url) {
  using E = Unexpected<std::string>;
  RedisUrl u;
  if (url.starts_with("redis://")) {
    url.remove_prefix(8);
  } else if (url.starts_with("rediss://")) {
    u.tls = true;
    u.port = 6379;
    url.remove_prefix(9);
  } else {
    return E("a Redis URL starts with redis:// or rediss://");
  }
  std::string_view path;
  if (const size_t slash = url.find('/'); slash != std::string_view::npos) {
    path = url.substr(slash + 1);
    url = url.substr(0, slash);
  }
  if (const size_t at = url.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = url.substr(0, at);
    url = url.substr(at + 1);
    const size_t colon = info.find(':');
    bool ok_user = true, ok_password = true;
    u.user = percent_decode(info.substr(0, colon), ok_user);
    if (colon != std::string_view::npos)
      u.password = percent_decode(info.substr(colon + 1), ok_password);
    if (!ok_user || !ok_password) return E("the Redis URL's user or password has a bad %-escape");
  }
  std::string_view port;
  if (url.starts_with('[')) {
    const size_t close = url.find(']');
    if (close == std::string_view::npos) return E("the Redis URL's IPv6 host has no ']'");
    u.host = url.substr(1, close - 1);
    const std::string_view rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return E("the Redis URL has text after its host");
      port = rest.substr(1);
    }
  } else {
    const size_t colon = url.rfind(':');
    u.host = url.substr(0, colon);
    if (colon != std::string_view::npos) port = url.substr(colon + 1);
  }
  if (u.host.empty()) return E("the Redis URL names no host");
  if (url.find_first_of(" \t\r\n") != std::string_view::npos)
    return E("the Redis URL has white space in it");
  if (!port.empty() || url.ends_with(':')) {
    unsigned p = 0;
    if (std::from_chars(port.data(), port.data() + port.size(), p).ptr !=
            port.data() + port.size() ||
        port.empty() || p == 0 || p > 65535)
      return E("the Redis URL's port is not a number from 1 to 65535");
    u.port = static_cast<uint16_t>(p);
  }
  if (!path.empty()) {
    unsigned db = 0;
    if (std::from_chars(path.data(), path.data() + path.size(), db).ptr !=
            path.data() + path.size() ||
        db > 15)
      return E("the Redis URL's database (after '/') is not a number from 0 to 15");
    u.db = db;
  }
  return u;
}

void encode_command(const RedisClient::Command& command, std::string& out) {
  out += '*';
  out += std::to_string(command.size());
  out += "\r\n";
  for (const std::string& arg : command) {
    out += '$';
    out += std::to_string(arg.size());
    out += "\r\n";
    out += arg;
    out += "\r\n";
  }
}

namespace {

// One line ending in CRLF at the front of `in`: its length without the CRLF, or -1 when
// there is none yet.
long line_end(std::string_view in) {
  const size_t p = in.find("\r\n");
  return p == std::string_view::npos ? -1 : static_cast<long>(p);
}

bool parse_int(std::string_view s, int64_t& v) {
  return !s.empty() && std::from_chars(s.data(), s.data() + s.size(), v).ptr == s.data() + s.size();
}

// Parses one reply into `out`, or with `out` null only measures it (nothing allocated).
long parse_at(std::string_view in, RedisReply* out, int depth) {
  if (in.empty()) return 0;
  if (depth > 8) return -1;
  const long end = line_end(in);
  if (end < 0) return in.size() > 64 * 1024 ? -1 : 0;  // no header line is that long
  const std::string_view line = in.substr(1, static_cast<size_t>(end) - 1);
  const long header = end + 2;
  switch (in[0]) {
    case '+':
    case '-':
      if (out) {
        out->type = in[0] == '+' ? RedisReply::Type::status : RedisReply::Type::error;
        out->str = line;
      }
      return header;
    case ':': {
      int64_t v = 0;
      if (!parse_int(line, v)) return -1;
      if (out) {
        out->type = RedisReply::Type::integer;
        out->integer = v;
      }
      return header;
    }
    case '$': {
      int64_t n = 0;
      if (!parse_int(line, n) || n < -1 || n > static_cast<int64_t>(kMaxBulkBytes)) return -1;
      if (n == -1) {
        if (out) out->type = RedisReply::Type::nil;
        return header;
      }
      const size_t need = static_cast<size_t>(header) + static_cast<size_t>(n) + 2;
      if (in.size() < need) return 0;
      if (in.substr(need - 2, 2) != "\r\n") return -1;
      if (out) {
        out->type = RedisReply::Type::bulk;
        out->str = in.substr(static_cast<size_t>(header), static_cast<size_t>(n));
      }
      return static_cast<long>(need);
    }
    case '*': {
      int64_t n = 0;
      if (!parse_int(line, n) || n < -1 || n > kMaxArrayElements) return -1;
      if (n == -1) {
        if (out) out->type = RedisReply::Type::nil;
        return header;
      }
      if (out) {
        out->type = RedisReply::Type::array;
        out->elements.clear();
        out->elements.reserve(static_cast<size_t>(std::min<int64_t>(n, 1024)));
      }
      long at = header;
      for (int64_t i = 0; i < n; ++i) {
        RedisReply e;
        const long used =
            parse_at(in.substr(static_cast<size_t>(at)), out ? &e : nullptr, depth + 1);
        if (used <= 0) return used;
        if (out) out->elements.push_back(std::move(e));
        at += used;
      }
      return at;
    }
    default:
      return -1;
  }
}

}  // namespace

long parse_reply(std::string_view in, RedisReply& out) {
  return parse_at(in, &out, 0);
}
long reply_length(std::string_view in) {
  return parse_at(in, nullptr, 0);
}

void begin_command(std::string& out, size_t args) {
  char buf[24];
  out += '*';
  out.append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, args).ptr - buf));
  out += "\r\n";
}

void add_arg(std::string& out, std::string_view arg) {
  char buf[24];
  out += '$';
  out.append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, arg.size()).ptr - buf));
  out += "\r\n";
  out += arg;
  out += "\r\n";
}

void add_arg(std::string& out, uint64_t value) {
  char buf[24];
  add_arg(out, std::string_view(buf, static_cast<size_t>(
                                         std::to_chars(buf, buf + sizeof buf, value).ptr - buf)));
}

// The socket, and with rediss:// the TLS session over it. Non-blocking: every wait is a
// poll() bounded by the call's deadline.
struct RedisClient::Conn {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  std::string in;  // bytes read and not yet parsed
  ~Conn() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
  }
  // Waits until the socket is ready for `events`; false at the deadline.
  bool wait(short events, Clock::time_point deadline) const {
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  }
  // Writes all of `data`; false on failure or at the deadline.
  bool write_all(std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
      if (ssl) {
        const int n = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
        if (n > 0) {
          data.remove_prefix(static_cast<size_t>(n));
          continue;
        }
        const int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_WRITE  ? !wait(POLLOUT, deadline)
            : e == SSL_ERROR_WANT_READ ? !wait(POLLIN, deadline)
                                       : true)
          return false;
        continue;
      }
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait(POLLOUT, deadline)) return false;
      } else {
        return false;
      }
    }
    return true;
  }
  // Reads some bytes into `in`; false on failure, the peer closing, or the deadline.
  bool read_some(Clock::time_point deadline) {
    char buf[16 * 1024];
    for (;;) {
      if (ssl) {
        const int n = SSL_read(ssl, buf, sizeof buf);
        if (n > 0) {
          in.append(buf, static_cast<size_t>(n));
          return true;
        }
        const int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ    ? !wait(POLLIN, deadline)
            : e == SSL_ERROR_WANT_WRITE ? !wait(POLLOUT, deadline)
                                        : true)
          return false;
        continue;
      }
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait(POLLIN, deadline)) return false;
        continue;
      }
      return false;
    }
  }
};

RedisClient::RedisClient(Options options) : options_(std::move(options)) {}
RedisClient::~RedisClient() = default;
void RedisClient::close() noexcept {
  conn_.reset();
}

core::Expected<bool, std::string> RedisClient::connect(Clock::time_point deadline) {
  using E = Unexpected<std::string>;
  const RedisUrl& u = options_.url;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(u.host.c_str(), std::to_string(u.port).c_str(), &hints, &found);
      rc != 0)
    return E(u.host + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, ::freeaddrinfo);
  auto c = std::make_unique<Conn>();
  std::string why = "no address";
  for (const addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    c->fd = fd;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS && c->wait(POLLOUT, deadline)) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) break;
      why = std::strerror(err);
    } else {
      why = errno == EINPROGRESS ? "timed out" : std::strerror(errno);
    }
    ::close(fd);
    c->fd = -1;
  }
  if (c->fd < 0) return E("connecting to " + u.redacted() + ": " + why);
  const int one = 1;
  ::setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (u.tls) {
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) return E("TLS: cannot make a context");
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, nullptr);
    const bool loaded =
        options_.ca_file.empty()
            ? SSL_CTX_set_default_verify_paths(c->ctx) == 1
            : SSL_CTX_load_verify_locations(c->ctx, options_.ca_file.c_str(), nullptr) == 1;
    if (!loaded) return E("TLS: cannot read the CA file " + options_.ca_file);
    c->ssl = SSL_new(c->ctx);
    SSL_set_fd(c->ssl, c->fd);
    // The name (or address) in the URL is the one Redis's certificate must carry.
    SSL_set1_host(c->ssl, u.host.c_str());
    in6_addr a6;
    in_addr a4;
    if (inet_pton(AF_INET, u.host.c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, u.host.c_str(), &a6) != 1)
      SSL_set_tlsext_host_name(c->ssl, u.host.c_str());
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_connect(c->ssl);
      if (rc == 1) break;
      const int e = SSL_get_error(c->ssl, rc);
      if ((e == SSL_ERROR_WANT_READ && c->wait(POLLIN, deadline)) ||
          (e == SSL_ERROR_WANT_WRITE && c->wait(POLLOUT, deadline)))
        continue;
      const long verify = SSL_get_verify_result(c->ssl);
      return E("TLS handshake with " + u.redacted() + " failed" +
               (verify != X509_V_OK ? std::string(": ") + X509_verify_cert_error_string(verify)
                                    : std::string()));
    }
  }
  conn_ = std::move(c);
  // AUTH and SELECT ride with the first exchange's deadline.
  std::vector<Command> hello;
  if (!u.password.empty()) {
    if (u.user.empty())
      hello.push_back({"AUTH", u.password});
    else
      hello.push_back({"AUTH", u.user, u.password});
  }
  if (u.db) hello.push_back({"SELECT", std::to_string(u.db)});
  if (!hello.empty()) {
    std::string out;
    for (const auto& h : hello) encode_command(h, out);
    if (!conn_->write_all(out, deadline)) {
      conn_.reset();
      return E("writing to " + u.redacted() + " failed");
    }
    for (size_t i = 0; i < hello.size(); ++i) {
      RedisReply r;
      long used = 0;
      while ((used = parse_reply(conn_->in, r)) == 0)
        if (!conn_->read_some(deadline)) {
          conn_.reset();
          return E("no answer from " + u.redacted() + " in time");
        }
      if (used < 0 || !r.ok()) {
        conn_.reset();
        // Redis's own message ("WRONGPASS invalid username-password pair..."); it never
        // repeats the password.
        return E(u.redacted() + " refused " + hello[i][0] + ": " + (used < 0 ? "not RESP" : r.str));
      }
      conn_->in.erase(0, static_cast<size_t>(used));
    }
  }
  return true;
}

core::Expected<bool, std::string> RedisClient::pipeline_raw(
    std::string_view encoded, size_t count,
    const std::function<void(size_t, std::string_view)>& on_reply) {
  using E = Unexpected<std::string>;
  const auto deadline = Clock::now() + options_.timeout;
  reconnected_ = false;
  if (!conn_) {
    auto c = connect(deadline);
    if (!c) return E(c.error());
    reconnected_ = true;
  }
  if (!conn_->write_all(encoded, deadline)) {
    conn_.reset();
    return E("writing to " + options_.url.redacted() + " failed or timed out");
  }
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    long used = 0;
    while ((used = reply_length(std::string_view(conn_->in).substr(at))) == 0) {
      if (at > 0) {  // keep the buffer to what is still unparsed
        conn_->in.erase(0, at);
        at = 0;
      }
      if (!conn_->read_some(deadline)) {
        conn_.reset();
        return E("no answer from " + options_.url.redacted() + " within " +
                 std::to_string(options_.timeout.count()) + " ms");
      }
    }
    if (used < 0) {
      conn_.reset();
      return E(options_.url.redacted() + " answered something that is not RESP");
    }
    on_reply(i, std::string_view(conn_->in).substr(at, static_cast<size_t>(used)));
    at += static_cast<size_t>(used);
  }
  conn_->in.erase(0, at);
  return true;
}

core::Expected<std::vector<RedisReply>, std::string> RedisClient::pipeline(
    const std::vector<Command>& commands) {
  std::string out;
  for (const auto& c : commands) encode_command(c, out);
  std::vector<RedisReply> replies(commands.size());
  auto r = pipeline_raw(out, commands.size(),
                        [&](size_t i, std::string_view raw) { parse_reply(raw, replies[i]); });
  if (!r) return Unexpected<std::string>(r.error());
  return replies;
}

core::Expected<RedisReply, std::string> RedisClient::call(const Command& command) {
  auto r = pipeline({command});
  if (!r) return Unexpected<std::string>(r.error());
  return std::move((*r)[0]);
}

}  // namespace keygate::cluster
