#include "handlers/shared_idempotency.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>

#include "core/key_format.hpp"

namespace keygate::handlers {

namespace {

constexpr size_t kNonce = 12, kTag = 16;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>(v >> (8 * i));
}
bool get_u32(std::string_view& in, uint32_t& v) {
  if (in.size() < 4) return false;
  v = 0;
  for (int i = 0; i < 4; ++i)
    v |= uint32_t{static_cast<uint8_t>(in[static_cast<size_t>(i)])} << (8 * i);
  in.remove_prefix(4);
  return true;
}

using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

std::string shared_name(const Principal& principal, std::string_view idempotency_key) {
  std::string input;
  if (!principal.root) {
    input.append(reinterpret_cast<const char*>(&principal.key.hi), 8);
    input.append(reinterpret_cast<const char*>(&principal.key.lo), 8);
  }
  input += '\0';
  input.append(idempotency_key);
  const core::KeyHash h = core::hash_key(input);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "idem/";
  for (uint8_t b : h) {
    name += kHex[b >> 4];
    name += kHex[b & 15];
  }
  return name;
}

std::array<uint8_t, 32> seal_key(std::string_view credential, std::string_view idempotency_key) {
  std::string msg = "keygate idempotent answer v1\n";
  msg.append(idempotency_key);
  std::array<uint8_t, 32> out{};
  unsigned len = 0;
  HMAC(EVP_sha256(), credential.data(), static_cast<int>(credential.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
  return out;
}

std::string seal_answer(const net::Response& res, const std::array<uint8_t, 32>& key,
                        std::string_view name) {
  std::string plain;
  put_u32(plain, res.status);
  put_u32(plain, static_cast<uint32_t>(res.content_type.size()));
  plain.append(res.content_type);
  put_u32(plain, static_cast<uint32_t>(res.headers.size()));
  plain.append(res.headers);
  plain.append(res.body);
  std::string out(kNonce + plain.size() + kTag, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(o, kNonce) != 1) return {};
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0, m = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), o) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(name.data()),
                        static_cast<int>(name.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o + kNonce, &n,
                        reinterpret_cast<const unsigned char*>(plain.data()),
                        static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + kNonce + n, &m) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, o + kNonce + plain.size()) != 1)
    return {};
  OPENSSL_cleanse(plain.data(), plain.size());
  return out;
}

bool open_answer(std::string_view sealed, const std::array<uint8_t, 32>& key, std::string_view name,
                 net::Response& out) {
  if (sealed.size() < kNonce + kTag) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t len = sealed.size() - kNonce - kTag;
  std::string plain(len, '\0');
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0, m = 0;
  unsigned char tag[kTag];
  std::memcpy(tag, s + kNonce + len, kTag);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), s) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(name.data()),
                        static_cast<int>(name.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n, s + kNonce,
                        static_cast<int>(len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + n, &m) != 1)
    return false;
  std::string_view in = plain;
  uint32_t status = 0, ct = 0, hl = 0;
  if (!get_u32(in, status) || !get_u32(in, ct) || in.size() < ct) return false;
  const std::string_view content_type = in.substr(0, ct);
  in.remove_prefix(ct);
  if (!get_u32(in, hl) || in.size() < hl) return false;
  out.status = static_cast<uint16_t>(status);
  out.content_type = content_type == "application/json" ? "application/json" : "text/plain";
  out.headers.assign(in.substr(0, hl));
  in.remove_prefix(hl);
  out.body.assign(in);
  OPENSSL_cleanse(plain.data(), plain.size());
  return true;
}

}  // namespace keygate::handlers
