#include "core/model.hpp"

namespace keygate::core {

std::string_view to_string(OrgStatus s) noexcept {
  return s == OrgStatus::active ? "active" : "suspended";
}

std::string_view to_string(KeyStatus s) noexcept {
  switch (s) {
    case KeyStatus::active:
      return "active";
    case KeyStatus::rotating:
      return "rotating";
    case KeyStatus::expired:
      return "expired";
    case KeyStatus::revoked:
      return "revoked";
  }
  return "active";
}

}  // namespace keygate::core
