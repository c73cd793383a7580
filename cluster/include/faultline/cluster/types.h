// Vocabulary types shared by every part of the cluster (and by its users: chaos, probes).
//
// Strong ids keep a broker id from being passed where a partition index is expected. They are
// plain values: cheap to copy, ordered, hashable, printable with fmt.
#pragma once

#include <fmt/format.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace faultline::cluster {

template <typename T, typename Tag>
class named_type {
 public:
  using value_type = T;
  constexpr named_type() = default;
  constexpr explicit named_type(T v) : value_(v) {}
  constexpr T value() const { return value_; }
  constexpr T operator()() const { return value_; }
  friend constexpr auto operator<=>(const named_type&, const named_type&) = default;
  friend constexpr bool operator==(const named_type&, const named_type&) = default;
  constexpr named_type& operator++() {
    ++value_;
    return *this;
  }
  constexpr named_type next() const { return named_type(value_ + 1); }

 private:
  T value_{};
};

using BrokerId = named_type<int32_t, struct broker_id_tag>;
using PartitionIndex = named_type<int32_t, struct partition_index_tag>;
using LeaderEpoch = named_type<int32_t, struct leader_epoch_tag>;
using PartitionEpoch = named_type<int32_t, struct partition_epoch_tag>;
using BrokerEpoch = named_type<int64_t, struct broker_epoch_tag>;
// Position in a partition log. Offsets are dense: every record has one, starting at 0.
using Offset = named_type<int64_t, struct offset_tag>;
// Position in the controller's metadata log.
using MetadataOffset = named_type<int64_t, struct metadata_offset_tag>;

inline constexpr BrokerId kNoBroker{-1};
inline constexpr LeaderEpoch kNoLeaderEpoch{-1};

struct TopicPartition {
  std::string topic;
  PartitionIndex partition;
  friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
  friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
};

// acks of a produce request: 0 (no answer), 1 (leader append), all (-1: high watermark passed).
enum class Acks : int8_t { none = 0, leader = 1, all = -1 };

}  // namespace faultline::cluster

template <typename T, typename Tag>
struct std::hash<faultline::cluster::named_type<T, Tag>> {
  size_t operator()(const faultline::cluster::named_type<T, Tag>& v) const noexcept {
    return std::hash<T>{}(v.value());
  }
};

template <>
struct std::hash<faultline::cluster::TopicPartition> {
  size_t operator()(const faultline::cluster::TopicPartition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31 + std::hash<int32_t>{}(tp.partition.value());
  }
};

template <typename T, typename Tag>
struct fmt::formatter<faultline::cluster::named_type<T, Tag>> : fmt::formatter<T> {
  auto format(const faultline::cluster::named_type<T, Tag>& v, fmt::format_context& ctx) const {
    return fmt::formatter<T>::format(v.value(), ctx);
  }
};

template <>
struct fmt::formatter<faultline::cluster::TopicPartition> : fmt::formatter<std::string> {
  auto format(const faultline::cluster::TopicPartition& tp, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "{}-{}", tp.topic, tp.partition.value());
  }
};
