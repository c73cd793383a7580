// ReplicaList: the ordered broker lists of a partition (assignment, ISR, adding/removing).
//
// Replication factors are small, and a controller holds a million partitions, so a list keeps up
// to kInline brokers inside the object and only spills to the heap beyond that: elections and
// metadata replay then allocate nothing per partition.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

#include "faultline/cluster/types.h"

namespace faultline::cluster {

class ReplicaList {
 public:
  static constexpr uint32_t kInline = 6;
  using value_type = BrokerId;
  using iterator = BrokerId*;
  using const_iterator = const BrokerId*;

  ReplicaList() = default;
  ReplicaList(std::initializer_list<BrokerId> ids) { assign(ids.begin(), ids.end()); }
  ReplicaList(std::initializer_list<int32_t> ids) {
    reserve(static_cast<uint32_t>(ids.size()));
    for (int32_t id : ids)
      push_back(BrokerId{id});
  }
  template <typename It>
  ReplicaList(It first, It last) {
    assign(first, last);
  }
  explicit ReplicaList(const std::vector<BrokerId>& ids) { assign(ids.begin(), ids.end()); }

  ReplicaList(const ReplicaList& other) { assign(other.begin(), other.end()); }
  ReplicaList(ReplicaList&& other) noexcept { steal(other); }
  ReplicaList& operator=(const ReplicaList& other) {
    if (this != &other) {
      size_ = 0;
      assign(other.begin(), other.end());
    }
    return *this;
  }
  ReplicaList& operator=(ReplicaList&& other) noexcept {
    if (this != &other) {
      release();
      steal(other);
    }
    return *this;
  }
  ~ReplicaList() { release(); }

  uint32_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  BrokerId* data() { return on_heap() ? heap_ : inline_; }
  const BrokerId* data() const { return on_heap() ? heap_ : inline_; }
  iterator begin() { return data(); }
  iterator end() { return data() + size_; }
  const_iterator begin() const { return data(); }
  const_iterator end() const { return data() + size_; }
  BrokerId& operator[](uint32_t i) { return data()[i]; }
  BrokerId operator[](uint32_t i) const { return data()[i]; }
  BrokerId front() const { return data()[0]; }
  BrokerId back() const { return data()[size_ - 1]; }

  bool contains(BrokerId id) const { return std::find(begin(), end(), id) != end(); }
  void clear() { size_ = 0; }
  void push_back(BrokerId id) {
    if (size_ == capacity_)
      reserve(capacity_ * 2);
    data()[size_++] = id;
  }
  // Removes every occurrence of `id`; true when something was removed.
  bool erase(BrokerId id) {
    BrokerId* new_end = std::remove(begin(), end(), id);
    bool removed = new_end != end();
    size_ = static_cast<uint32_t>(new_end - begin());
    return removed;
  }
  void reserve(uint32_t capacity) {
    if (capacity <= capacity_)
      return;
    auto* grown = new BrokerId[capacity];
    std::copy(begin(), end(), grown);
    uint32_t size = size_;
    release();
    heap_ = grown;
    capacity_ = capacity;
    size_ = size;
  }
  std::vector<BrokerId> to_vector() const { return {begin(), end()}; }

  friend bool operator==(const ReplicaList& a, const ReplicaList& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }

 private:
  bool on_heap() const { return capacity_ > kInline; }
  template <typename It>
  void assign(It first, It last) {
    reserve(static_cast<uint32_t>(std::distance(first, last)));
    for (; first != last; ++first)
      data()[size_++] = *first;
  }
  void release() {
    if (on_heap())
      delete[] heap_;
    capacity_ = kInline;
    size_ = 0;
  }
  void steal(ReplicaList& other) {
    size_ = other.size_;
    capacity_ = other.capacity_;
    if (other.on_heap()) {
      heap_ = other.heap_;
    } else {
      std::copy(other.inline_, other.inline_ + other.size_, inline_);
    }
    other.capacity_ = kInline;
    other.size_ = 0;
  }

  uint32_t size_ = 0;
  uint32_t capacity_ = kInline;
  union {
    BrokerId inline_[kInline] = {};
    BrokerId* heap_;
  };
};

}  // namespace faultline::cluster

template <>
struct fmt::formatter<faultline::cluster::ReplicaList> : fmt::formatter<std::string_view> {
  auto format(const faultline::cluster::ReplicaList& list, fmt::format_context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "[");
    for (uint32_t i = 0; i < list.size(); ++i) {
      if (i > 0)
        *out++ = ',';
      out = fmt::format_to(out, "{}", list[i].value());
    }
    return fmt::format_to(out, "]");
  }
};
