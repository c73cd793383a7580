// Vocabulary of the checker: strong ids and the small result type used for expected failures.
//
// The checker depends on nothing else in the project, so it carries its own `named_type` (the same
// shape as cluster/types.h): a process id cannot be passed where a partition is expected.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <variant>

namespace faultline::checker {

template <typename T, typename Tag>
class named_type {
 public:
  using value_type = T;
  constexpr named_type() = default;
  constexpr explicit named_type(T v) : value_(v) {}
  constexpr T value() const { return value_; }
  friend constexpr auto operator<=>(const named_type&, const named_type&) = default;
  friend constexpr bool operator==(const named_type&, const named_type&) = default;

 private:
  T value_{};
};

// A client thread of the workload (Jepsen's "process"). A crashed process is never reused.
using ProcessId = named_type<int64_t, struct process_id_tag>;
// Partition index of the topic the Kafka workload writes to.
using PartitionId = named_type<int32_t, struct partition_id_tag>;
// Position in a partition log.
using Offset = named_type<int64_t, struct offset_tag>;
using LeaderEpoch = named_type<int32_t, struct leader_epoch_tag>;
using BrokerId = named_type<int32_t, struct broker_id_tag>;

// An expected failure carried as a value: either a T or an E. Small on purpose (GCC 12 has no
// std::expected); only what the checker needs.
template <typename T, typename E>
class Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(E error) : v_(std::in_place_index<1>, std::move(error)) {}
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const E& error() const { return std::get<1>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, E> v_;
};

}  // namespace faultline::checker

template <typename T, typename Tag>
struct std::hash<faultline::checker::named_type<T, Tag>> {
  size_t operator()(const faultline::checker::named_type<T, Tag>& v) const noexcept {
    return std::hash<T>{}(v.value());
  }
};

template <typename T, typename Tag>
struct fmt::formatter<faultline::checker::named_type<T, Tag>> : fmt::formatter<T> {
  auto format(const faultline::checker::named_type<T, Tag>& v, fmt::format_context& ctx) const {
    return fmt::formatter<T>::format(v.value(), ctx);
  }
};
