// Expected<T, E>: std::expected where the standard library offers it, else the few members
// keygate uses. libstdc++ 12 hides <expected> from clang before 19 (it asks for
// __cpp_concepts >= 202002L), and the fuzz targets are built with Debian's clang 16
// (scripts/fuzz); g++, the project's compiler, always gets std::expected.
#pragma once

#include <utility>
#include <version>

#ifdef __cpp_lib_expected
#include <expected>

namespace keygate::core {
template <class T, class E>
using Expected = std::expected<T, E>;
template <class E>
using Unexpected = std::unexpected<E>;
}  // namespace keygate::core

#else
#include <variant>

namespace keygate::core {

template <class E>
class Unexpected {
 public:
  explicit Unexpected(E e) : error_(std::move(e)) {}
  E& error() noexcept { return error_; }

 private:
  E error_;
};

template <class T, class E>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(Unexpected<E> e) : v_(std::in_place_index<1>, std::move(e.error())) {}
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  const T& operator*() const { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const E& error() const { return std::get<1>(v_); }
  friend bool operator==(const Expected& a, const T& b) { return a.has_value() && *a == b; }

 private:
  std::variant<T, E> v_;
};

}  // namespace keygate::core
#endif
