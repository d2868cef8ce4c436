// Fuzz target: the first bytes a client sends to keygate's TLS listener (a ClientHello,
// then whatever follows), through the TlsSession a connection gets (net/tls.hpp), split
// into two reads where the first input byte says. The server certificate is made once, in
// process. Whatever arrives, the session must answer ok, closed or failed (with a reason),
// never crash, leak or read out of bounds; a failed session stays failed; nothing becomes
// plaintext before a handshake completes.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "net/tls.hpp"

namespace {

// A self-signed P-256 certificate and its key, written to a scratch directory that is
// removed at exit; the TLS context that serves them, asking for client certificates (so
// that a client Certificate message is parsed too).
struct Fixture {
  std::string dir;
  std::shared_ptr<keygate::net::TlsContext> context;

  Fixture() {
    char tmpl[] = "/tmp/keygate-fuzz-tls-XXXXXX";
    dir = mkdtemp(tmpl);
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    FILE* c = std::fopen((dir + "/cert.pem").c_str(), "w");
    FILE* k = std::fopen((dir + "/key.pem").c_str(), "w");
    if (!c || !k || PEM_write_X509(c, x) != 1 ||
        PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
      std::abort();
    std::fclose(c);
    std::fclose(k);
    X509_free(x);
    EVP_PKEY_free(key);
    context = keygate::net::TlsContext::load(
        {dir + "/cert.pem", dir + "/key.pem", "", keygate::net::ClientAuth::request});
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  if (size < 1) return 0;
  const size_t split = size > 1 ? data[0] % size : 0;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  keygate::net::TlsSession session(fixture.context);
  std::string plain, wire;
  using Status = keygate::net::TlsSession::Status;
  Status st = session.receive(bytes, std::min(split, n), plain, wire);
  if (st == Status::ok)
    st = session.receive(bytes + std::min(split, n), n - std::min(split, n), plain, wire);
  if (st == Status::failed) {
    if (session.error().empty()) std::abort();  // a failure says why
    // Failed stays failed: more bytes change nothing.
    if (session.receive(bytes, n, plain, wire) != Status::failed) std::abort();
  }
  if (!session.handshake_done() && !plain.empty()) std::abort();
  // Answers are encrypted only after a handshake.
  std::string out;
  if (session.send("HTTP/1.1 200 OK\r\n\r\n", out) != session.handshake_done()) std::abort();
  return 0;
}
