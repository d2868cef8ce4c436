#include "net/tls.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace keygate::net {

namespace {

// Mozilla's "intermediate" profile: TLS 1.2 with ECDHE, AEAD ciphers only (no DHE: no
// parameters to manage), and TLS 1.3 with OpenSSL's default suites.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:P-256:P-384";

std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

[[noreturn]] void refuse(const std::string& file, const std::string& why) {
  throw std::runtime_error(file + ": " + why);
}

// Session tickets: the keys that encrypt them, shared by every context (a SIGHUP reload
// does not make reconnecting gateways do a full handshake), a fresh one every 12 hours;
// tickets under the one before are still taken, and renewed.
class TicketKeys {
 public:
  struct Key {
    unsigned char name[16], aes[32], hmac[32];
  };
  // The key to encrypt with now.
  Key current() {
    std::lock_guard lock(mutex_);
    rotate_if_due();
    return keys_[0];
  }
  // The key named `name`: 1 if it is the current one, 2 if the one before (renew), 0 none.
  int find(const unsigned char* name, Key& out) {
    std::lock_guard lock(mutex_);
    rotate_if_due();
    for (int i = 0; i < count_; ++i)
      if (std::memcmp(keys_[i].name, name, 16) == 0) {
        out = keys_[i];
        return i + 1;
      }
    return 0;
  }

 private:
  static constexpr auto kLifetime = std::chrono::hours(12);
  void rotate_if_due() {
    const auto now = std::chrono::steady_clock::now();
    if (count_ && now - made_ < kLifetime) return;
    keys_[1] = keys_[0];
    Key& k = keys_[0];
    if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
        RAND_bytes(k.hmac, sizeof k.hmac) != 1)
      throw std::runtime_error("no randomness for a session ticket key");
    count_ = count_ ? 2 : 1;
    made_ = now;
  }
  std::mutex mutex_;
  Key keys_[2]{};
  int count_ = 0;
  std::chrono::steady_clock::time_point made_;
};

TicketKeys& ticket_keys() {
  static TicketKeys keys;
  return keys;
}

int ticket_key_callback(SSL*, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                        EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  TicketKeys::Key key;
  int result = 1;
  if (encrypt) {
    key = ticket_keys().current();
    std::memcpy(key_name, key.name, 16);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) return -1;
  } else {
    result = ticket_keys().find(key_name, key);
    if (!result) return 0;  // unknown (older than two rotations): a full handshake
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) return -1;
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac, sizeof key.hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return result;
}

// ALPN: HTTP/1.1 is all keygate speaks; a client that offers only other protocols gets no
// ALPN answer rather than a failed handshake (curl and nginx both offer http/1.1).
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, out_len, kHttp11, sizeof kHttp11, in, in_len) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// --tls-client-auth request: any well-formed certificate is taken (uploaded certificates
// are self-signed or from any CA); the binding at verification decides.
int accept_any_certificate(int, X509_STORE_CTX*) {
  return 1;
}

std::string describe(X509* cert) {
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  std::string out = subject;
  BIO* b = BIO_new(BIO_s_mem());
  if (b && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1) {
    char buf[64] = {};
    const int n = BIO_read(b, buf, sizeof buf - 1);
    if (n > 0) out += ", valid until " + std::string(buf, static_cast<size_t>(n));
  }
  BIO_free(b);
  return out;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::load(const TlsOptions& o) {
  std::shared_ptr<TlsContext> c(new TlsContext());
  const ClientAuth client_auth = o.client_ca_file.empty() ? o.client_auth : ClientAuth::require;
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (!c->ctx_) throw std::runtime_error("cannot create a TLS context: " + openssl_error());
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1)
    throw std::runtime_error("cannot set the TLS ciphers: " + openssl_error());
  // Buffers released when a connection is idle: thousands of keep-alive connections then
  // cost little more over TLS than without.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_callback);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // tickets only: nothing per server

  // The certificate chain and key, each checked with a message naming the file.
  if (FILE* f = std::fopen(o.cert_file.c_str(), "r"))
    std::fclose(f);
  else
    refuse(o.cert_file, std::string("cannot read the TLS certificate: ") + std::strerror(errno));
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
    refuse(o.cert_file, "not a PEM certificate (chain): " + openssl_error());
  if (FILE* f = std::fopen(o.key_file.c_str(), "r"))
    std::fclose(f);
  else
    refuse(o.key_file, std::string("cannot read the TLS key: ") + std::strerror(errno));
  EVP_PKEY* key = nullptr;
  if (FILE* f = std::fopen(o.key_file.c_str(), "r")) {
    key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
  }
  if (!key) refuse(o.key_file, "not a PEM private key (or one protected by a passphrase)");
  const bool matches = X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) == 1;
  const bool used = matches && SSL_CTX_use_PrivateKey(ctx, key) == 1;
  EVP_PKEY_free(key);
  ERR_clear_error();
  if (!matches) refuse(o.key_file, "this key does not match the certificate in " + o.cert_file);
  if (!used) refuse(o.key_file, "cannot use this key: " + openssl_error());
  c->description_ = describe(SSL_CTX_get0_certificate(ctx));

  switch (client_auth) {
    case ClientAuth::none:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
      break;
    case ClientAuth::request:
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_certificate);
      break;
    case ClientAuth::require: {
      if (SSL_CTX_load_verify_locations(ctx, o.client_ca_file.c_str(), nullptr) != 1)
        refuse(o.client_ca_file, "not a readable PEM CA certificate: " + openssl_error());
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
      if (!names) refuse(o.client_ca_file, "holds no CA certificate");
      SSL_CTX_set_client_CA_list(ctx, names);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
      break;
    }
  }
  // A session from a context with another client policy must not be resumed here.
  static const unsigned char kSessionContext[] = "keygate";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  return c;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

TlsConfig::TlsConfig(TlsOptions options)
    : options_(std::move(options)), current_(TlsContext::load(options_)) {}

std::shared_ptr<TlsContext> TlsConfig::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

bool TlsConfig::reload(std::string& error) {
  try {
    auto fresh = TlsContext::load(options_);
    std::lock_guard lock(mutex_);
    current_ = std::move(fresh);
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

TlsSession::TlsSession(std::shared_ptr<TlsContext> context) : context_(std::move(context)) {
  ssl_ = SSL_new(context_->get());
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !in_ || !out_) throw std::bad_alloc();
  // An empty memory BIO says "retry", not "end of file": more bytes will come.
  BIO_set_mem_eof_return(in_, -1);
  SSL_set_bio(ssl_, in_, out_);  // ssl_ owns both now
  SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);
}

void TlsSession::drain(std::string& wire) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(out_, &data);
  if (n > 0) {
    wire.append(data, static_cast<size_t>(n));
    (void)BIO_reset(out_);
  }
}

void TlsSession::on_handshake() {
  handshake_done_ = true;
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return;
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), peer_.sha256.data(), &len) != 1 || len != 32) return;
  has_peer_ = true;
}

TlsSession::Status TlsSession::receive(const char* data, size_t n, std::string& plain,
                                       std::string& wire) {
  if (n && BIO_write(in_, data, static_cast<int>(n)) != static_cast<int>(n)) {
    error_ = "out of memory";
    return Status::failed;
  }
  ERR_clear_error();
  if (!handshake_done_) {
    const int rc = SSL_do_handshake(ssl_);
    drain(wire);  // the server's flight, or an alert
    if (rc != 1) {
      const int e = SSL_get_error(ssl_, rc);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok;
      error_ = openssl_error();
      return Status::failed;
    }
    on_handshake();
  }
  char buf[16 * 1024];
  for (;;) {
    const int rc = SSL_read(ssl_, buf, sizeof buf);
    if (rc > 0) {
      plain.append(buf, static_cast<size_t>(rc));
      continue;
    }
    drain(wire);  // a TLS 1.3 ticket, a key update's answer
    const int e = SSL_get_error(ssl_, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok;
    if (e == SSL_ERROR_ZERO_RETURN) return Status::closed;
    error_ = openssl_error();
    return Status::failed;
  }
}

bool TlsSession::send(std::string_view plain, std::string& wire) {
  if (!handshake_done_) return false;
  while (!plain.empty()) {
    const int rc =
        SSL_write(ssl_, plain.data(), static_cast<int>(std::min<size_t>(plain.size(), 1 << 30)));
    if (rc <= 0) {  // memory BIOs take everything: only a broken session fails here
      error_ = openssl_error();
      return false;
    }
    plain.remove_prefix(static_cast<size_t>(rc));
  }
  drain(wire);
  return true;
}

}  // namespace keygate::net
