#include <faultline/checker/linearizability.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>

namespace faultline::checker {
namespace {

// ---------------------------------------------------------------------------------------------
// Interning: model states become small integers so the memo stores and compares 4 bytes.

template <typename T, typename Hash = std::hash<T>>
class Interner {
 public:
  uint32_t id(const T& v) {
    auto [it, inserted] = ids_.try_emplace(v, static_cast<uint32_t>(values_.size()));
    if (inserted)
      values_.push_back(v);
    return it->second;
  }
  const T& value(uint32_t id) const { return values_[id]; }
  std::size_t size() const { return values_.size(); }

 private:
  std::unordered_map<T, uint32_t, Hash> ids_;
  std::vector<T> values_;
};

struct VectorHash {
  size_t operator()(const std::vector<uint32_t>& v) const noexcept {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t x : v)
      h = (h ^ x) * 1099511628211ull;
    return h;
  }
};

struct ValueHash {
  size_t operator()(const Value& v) const noexcept {
    if (const auto* i = std::get_if<int64_t>(&v))
      return std::hash<int64_t>{}(*i) * 3 + 1;
    if (const auto* s = std::get_if<std::string>(&v))
      return std::hash<std::string>{}(*s) * 3 + 2;
    return 0;
  }
};

// A flat open-addressing map from 64-bit keys to 32-bit values: the models' transition caches
// are hit on nearly every search step, where node-based maps spend their time in malloc.
class FlatMap {
 public:
  FlatMap() : slots_(256) {}
  // The value for key, inserting make() if absent.
  template <typename Make>
  uint32_t get_or_insert(uint64_t key, Make make) {
    if ((size_ + 1) * 2 > slots_.size())
      grow();
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = spread(key) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.key == key && s.used)
        return s.value;
      if (!s.used) {
        const uint32_t v = make();
        // make() may not touch this map, so the slot is still ours.
        s = Slot{key, v, true};
        ++size_;
        return v;
      }
    }
  }

 private:
  struct Slot {
    uint64_t key = 0;
    uint32_t value = 0;
    bool used = false;
  };
  static uint64_t spread(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (!s.used)
        continue;
      std::size_t i = spread(s.key) & mask;
      while (slots_[i].used)
        i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

// One operation as the search sees it.
enum class Action : uint8_t { read, write, cas_ok, cas_fail, append, read_log };
struct PreparedOp {
  std::size_t history_index = 0;
  Action action = Action::read;
  uint32_t key = 0;  // dense key index within the partition (kv unpartitioned)
  uint32_t a = 0;    // read: expected value id; write/append: value id; cas: expected id
  uint32_t b = 0;    // cas: new value id
  std::chrono::nanoseconds call{0};
  std::optional<std::chrono::nanoseconds> ret;  // nullopt: unknown outcome
};

// ---------------------------------------------------------------------------------------------
// Models. Each maps (state id, op) to the next state id, or nullopt if the op's observed result
// is impossible in that state. State ids are interned by the model.

// One register holding interned values (cas-register): the state is the value id.
class RegisterModel {
 public:
  explicit RegisterModel(uint32_t initial_value) : initial_(initial_value) {}
  uint32_t initial() const { return initial_; }
  std::optional<uint32_t> step(uint32_t state, const PreparedOp& op) {
    switch (op.action) {
      case Action::read:
        return state == op.a ? std::optional<uint32_t>(state) : std::nullopt;
      case Action::cas_fail:
        return state != op.a ? std::optional<uint32_t>(state) : std::nullopt;
      case Action::cas_ok:
        return state == op.a ? std::optional<uint32_t>(op.b) : std::nullopt;
      case Action::write:
        return op.a;
      default:
        return std::nullopt;
    }
  }
  // Dead-end detection (see search): with no state-changing op left that could run before the
  // read, the state must already be what the read returns.
  static constexpr bool kPrunes = true;
  static bool changes_state(const PreparedOp& op) {
    return op.action == Action::write || op.action == Action::cas_ok;
  }
  bool can_still_read(uint32_t state, const PreparedOp& read) { return state == read.a; }

 private:
  uint32_t initial_;
};

// One string (kv): the state is a node of a trie of appended pieces, so an append is a hash
// lookup on two integers instead of building and hashing a new string. Two nodes may spell the
// same string ("ab"+"c" and "a"+"bc"); that only makes the memo a little less effective, while
// a get compares the spelled string itself, so verdicts stay exact.
class StringModel {
 public:
  // Every value the history mentions is interned before the search starts.
  explicit StringModel(const Interner<Value, ValueHash>& values) : values_(values) {
    pieces_.reserve(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto* str = std::get_if<std::string>(&values.value(static_cast<uint32_t>(i)));
      Piece p{0, 1, 0};
      if (str) {
        for (unsigned char c : *str) {
          p.hash = p.hash * kBase + c;
          p.power *= kBase;
        }
        p.length = static_cast<uint32_t>(str->size());
      }
      pieces_.push_back(p);
    }
    nodes_.push_back(Node{0, 0, 0, 0});  // the empty string
  }
  uint32_t initial() const { return 0; }
  std::optional<uint32_t> step(uint32_t state, const PreparedOp& op) {
    switch (op.action) {
      case Action::read:
        return spells(state, op.a) ? std::optional<uint32_t>(state) : std::nullopt;
      case Action::write:
        return child(0, op.a);
      case Action::append:
        return child(state, op.a);
      default:
        return std::nullopt;
    }
  }
  // Dead-end detection (see search): with no put left that could run before the get, the string
  // only grows by appends until then, so it must be a prefix of what the get returns. Compared by
  // hash: unequal hashes prove a mismatch, so pruning stays sound even under a collision.
  static constexpr bool kPrunes = true;
  static bool changes_state(const PreparedOp& op) { return op.action == Action::write; }
  bool can_still_read(uint32_t state, const PreparedOp& read) {
    if (read.action != Action::read)
      return true;
    const Node& n = nodes_[state];
    const Piece& r = pieces_[read.a];
    if (n.length > r.length)
      return false;
    auto& prefix = prefix_hashes_[read.a];
    if (prefix.empty()) {
      const auto& str = std::get<std::string>(values_.value(read.a));
      prefix.resize(str.size() + 1, 0);
      for (std::size_t i = 0; i < str.size(); ++i) {
        prefix[i + 1] = prefix[i] * kBase + static_cast<unsigned char>(str[i]);
      }
    }
    return prefix[n.length] == n.hash;
  }

 private:
  static constexpr uint64_t kBase = 0x100000001b3ull;
  struct Piece {
    uint64_t hash;   // polynomial hash of the string (mod 2^64)
    uint64_t power;  // kBase^length
    uint32_t length;
  };
  struct Node {
    uint32_t parent;
    uint32_t piece;   // value id of the appended string
    uint32_t length;  // of the whole string
    uint64_t hash;    // of the whole string: hash(parent) * power(piece) + hash(piece)
  };
  uint32_t child(uint32_t parent, uint32_t piece) {
    return children_.get_or_insert((uint64_t{parent} << 32) | piece, [&] {
      const Node& p = nodes_[parent];
      const Piece& x = pieces_[piece];
      nodes_.push_back(Node{parent, piece, p.length + x.length, p.hash * x.power + x.hash});
      return static_cast<uint32_t>(nodes_.size() - 1);
    });
  }
  // Length and hash rule out almost every mismatch in O(1); a match is confirmed on the strings
  // (once per node and value), so a hash collision cannot change a verdict.
  bool spells(uint32_t node, uint32_t value) {
    const Node& n = nodes_[node];
    if (n.length != pieces_[value].length || n.hash != pieces_[value].hash)
      return false;
    return spells_.get_or_insert((uint64_t{node} << 32) | value,
                                 [&] { return spells_string(node, value) ? 1u : 0u; }) != 0;
  }
  bool spells_string(uint32_t node, uint32_t value) const {
    const auto& expected = std::get<std::string>(values_.value(value));
    std::size_t end = expected.size();
    bool same = true;
    for (uint32_t n = node; n != 0 && same; n = nodes_[n].parent) {
      const auto& piece = std::get<std::string>(values_.value(nodes_[n].piece));
      same = piece.size() <= end && expected.compare(end - piece.size(), piece.size(), piece) == 0;
      end -= same ? piece.size() : 0;
    }
    return same && end == 0;
  }

  const Interner<Value, ValueHash>& values_;
  std::vector<Piece> pieces_;
  std::unordered_map<uint32_t, std::vector<uint64_t>> prefix_hashes_;
  std::vector<Node> nodes_;
  FlatMap children_;
  FlatMap spells_;
};

// Several independent keys checked together (no P-compositionality): the state is an interned
// vector of per-key states of the inner model.
template <typename Inner>
class MapModel {
 public:
  static constexpr bool kPrunes = false;
  static bool changes_state(const PreparedOp&) { return true; }
  bool can_still_read(uint32_t, const PreparedOp&) { return true; }
  MapModel(std::size_t keys, Inner inner) : inner_(std::move(inner)) {
    initial_ = states_.id(std::vector<uint32_t>(keys, inner_.initial()));
  }
  uint32_t initial() const { return initial_; }
  std::optional<uint32_t> step(uint32_t state, const PreparedOp& op) {
    const uint32_t current = states_.value(state)[op.key];
    auto next = inner_.step(current, op);
    if (!next || *next == current)
      return next ? std::optional<uint32_t>(state) : std::nullopt;
    std::vector<uint32_t> v = states_.value(state);
    v[op.key] = *next;
    return states_.id(v);
  }

 private:
  Inner inner_;
  Interner<std::vector<uint32_t>, VectorHash> states_;
  uint32_t initial_;
};

// An append-only log: the state is an interned sequence of value ids.
class LogModel {
 public:
  static constexpr bool kPrunes = false;
  static bool changes_state(const PreparedOp&) { return true; }
  bool can_still_read(uint32_t, const PreparedOp&) { return true; }
  explicit LogModel(Interner<std::vector<uint32_t>, VectorHash>& logs) : logs_(logs) {
    initial_ = logs_.id({});
  }
  uint32_t initial() const { return initial_; }
  std::optional<uint32_t> step(uint32_t state, const PreparedOp& op) {
    if (op.action == Action::read_log) {
      if (state == op.a)
        return state;
      return std::nullopt;
    }
    return appended_.get_or_insert((uint64_t{state} << 32) | op.a, [&] {
      std::vector<uint32_t> next = logs_.value(state);
      next.push_back(op.a);
      return logs_.id(next);
    });
  }

 private:
  Interner<std::vector<uint32_t>, VectorHash>& logs_;
  FlatMap appended_;
  uint32_t initial_;
};

// ---------------------------------------------------------------------------------------------
// The memo: a set of (linearized bitset, state), open addressing, bitsets in one arena.

class Memo {
 public:
  explicit Memo(std::size_t words) : words_(words), slots_(1024) {}
  std::size_t size() const { return size_; }

  // True if new (and now remembered).
  bool insert(uint64_t hash, uint32_t state, const std::vector<uint64_t>& bits) {
    if ((size_ + 1) * 2 > slots_.size())
      grow();
    const uint64_t h = mix(hash, state);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.index == 0) {
        s = Slot{h, state, static_cast<uint32_t>(size_ + 1)};
        arena_.insert(arena_.end(), bits.begin(), bits.end());
        ++size_;
        return true;
      }
      if (s.hash == h && s.state == state &&
          std::equal(bits.begin(), bits.end(), arena_.begin() + (s.index - 1) * words_)) {
        return false;
      }
    }
  }

 private:
  // 16 bytes, so four share a cache line; index 0 marks an empty slot.
  struct Slot {
    uint64_t hash = 0;
    uint32_t state = 0;
    uint32_t index = 0;  // 1 + position of the bitset in the arena
  };
  static uint64_t mix(uint64_t hash, uint32_t state) {
    uint64_t x = hash ^ (uint64_t{state} * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.index == 0)
        continue;
      std::size_t i = s.hash & mask;
      while (slots_[i].index != 0)
        i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::size_t words_;
  std::vector<Slot> slots_;
  std::vector<uint64_t> arena_;
  std::size_t size_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The search.

struct Entry {
  uint32_t op;
  bool is_call;
  Entry* match = nullptr;  // call -> its return (nullptr for unknown outcome)
  Entry* prev = nullptr;
  Entry* next = nullptr;
};

struct SearchResult {
  Verdict verdict = Verdict::valid;
  std::vector<uint32_t> longest_prefix;  // indices into the prepared ops
  std::optional<uint32_t> stuck;
};

bool is_read_only(const PreparedOp& op) {
  return op.action == Action::read || op.action == Action::read_log ||
         op.action == Action::cas_fail || (op.action == Action::cas_ok && op.a == op.b);
}

// Partitions are checked in parallel, smallest first; a partition stops early once a smaller one
// has failed, since only the smallest failing partition is reported.
struct StopToken {
  const std::atomic<std::size_t>* first_failure;
  std::size_t index;
  bool stop() const { return first_failure->load(std::memory_order_relaxed) < index; }
};

template <typename Model>
SearchResult search(const std::vector<PreparedOp>& ops, Model& model,
                    const LinearizabilityOptions& options, StopToken stop) {
  SearchResult result;
  const auto n = static_cast<uint32_t>(ops.size());
  if (n == 0)
    return result;

  // Entries in time order; at equal times calls first, so touching operations count as
  // concurrent (the permissive reading of a timestamp tie).
  std::vector<Entry> entries;
  entries.reserve(2 * n);
  struct Point {
    std::chrono::nanoseconds t;
    bool is_return;
    uint32_t op;
  };
  std::vector<Point> points;
  points.reserve(2 * n);
  for (uint32_t i = 0; i < n; ++i) {
    points.push_back({ops[i].call, false, i});
    if (ops[i].ret)
      points.push_back({*ops[i].ret, true, i});
  }
  std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
    return std::tie(a.t, a.is_return) < std::tie(b.t, b.is_return);
  });
  std::vector<Entry*> call_of(n, nullptr);
  Entry head{UINT32_MAX, false};
  for (const auto& p : points)
    entries.push_back(Entry{p.op, !p.is_return});
  Entry* prev = &head;
  for (auto& e : entries) {
    e.prev = prev;
    prev->next = &e;
    prev = &e;
    if (e.is_call)
      call_of[e.op] = &e;
  }
  for (auto& e : entries) {
    if (!e.is_call)
      call_of[e.op]->match = &e;
  }

  auto lift = [](Entry* e) {
    e->prev->next = e->next;
    if (e->next)
      e->next->prev = e->prev;
    if (Entry* m = e->match) {
      m->prev->next = m->next;
      if (m->next)
        m->next->prev = m->prev;
    }
  };
  auto unlift = [](Entry* e) {
    if (Entry* m = e->match) {
      m->prev->next = m;
      if (m->next)
        m->next->prev = m;
    }
    e->prev->next = e;
    if (e->next)
      e->next->prev = e;
  };

  std::mt19937_64 rng(0x5eed);
  std::vector<uint64_t> zobrist(n);
  for (auto& z : zobrist)
    z = rng();
  const std::size_t words = (n + 63) / 64;
  std::vector<uint64_t> bits(words, 0);
  uint64_t hash = 0;
  Memo memo(words);

  struct Frame {
    Entry* entry;
    uint32_t state;
    bool forced;  // a read-only op taken without branching (see below)
  };
  std::vector<Frame> stack;
  uint32_t state = model.initial();
  std::size_t remaining = 0;  // known-outcome ops not yet linearized
  for (const auto& op : ops)
    remaining += op.ret ? 1 : 0;
  bool stuck_recorded = false;
  uint64_t iterations = 0;

  // A configuration is a dead end when the op whose return comes first is a read that can no
  // longer return what it returned: it must be linearized before anything invoked after that
  // return, and none of the ops invoked before it can change the state the right way. Checked
  // right after `entry` would be linearized into state `next`, before the memo remembers it.
  // Returns the read's return entry when it is a dead end, else nullptr.
  auto dead_end = [&](Entry* entry, uint32_t next) -> Entry* {
    if constexpr (!Model::kPrunes) {
      return nullptr;
    } else {
      for (Entry* e = head.next; e != nullptr; e = e->next) {
        if (e == entry || e == entry->match)
          continue;
        if (e->is_call) {
          if (Model::changes_state(ops[e->op]))
            return nullptr;
          continue;
        }
        const PreparedOp& first = ops[e->op];
        if (!is_read_only(first) || first.action == Action::cas_fail)
          return nullptr;
        return model.can_still_read(next, first) ? nullptr : e;
      }
      return nullptr;
    }
  };

  // Two passes over the calls before the first pending return: first the ops with a known
  // outcome, then the unknown ones. Any order of trying is complete; this one linearizes an
  // unknown op only when the known ones cannot go on, which finds valid orders far sooner.
  bool unknown_pass = false;
  std::size_t unknown_left = ops.size() - remaining;  // unknown ops not linearized
  Entry* entry = head.next;
  while (remaining > 0) {
    if ((++iterations & 0xFFF) == 0 &&
        (stop.stop() ||
         (options.deadline && std::chrono::steady_clock::now() >= *options.deadline))) {
      result.verdict = Verdict::unknown;
      return result;
    }
    if (entry != nullptr && entry->is_call) {
      const uint32_t op = entry->op;
      const bool unknown = !ops[op].ret;
      if (unknown == unknown_pass) {
        if (auto next = model.step(state, ops[op])) {
          bits[op / 64] |= uint64_t{1} << (op % 64);
          hash ^= zobrist[op];
          Entry* blocked = dead_end(entry, *next);
          if (blocked != nullptr && stack.size() + 1 > result.longest_prefix.size()) {
            // Explain as the unpruned search would: this prefix is linearizable, and the read
            // that returns first is the op that cannot be placed after it.
            result.longest_prefix.clear();
            for (const auto& f : stack)
              result.longest_prefix.push_back(f.entry->op);
            result.longest_prefix.push_back(op);
            result.stuck = blocked->op;
            stuck_recorded = true;
          }
          if (blocked == nullptr && memo.insert(hash, *next, bits)) {
            // An op that never changes the state (a read, a failed cas) and can go next may as
            // well go next: any linearization that places it later stays one when it is moved
            // here, since everything it must follow is already linearized. So if this choice
            // fails, this configuration fails: no other choice is tried (see the backtrack).
            stack.push_back(Frame{entry, state, is_read_only(ops[op])});
            state = *next;
            lift(entry);
            --(unknown ? unknown_left : remaining);
            if (stack.size() > result.longest_prefix.size()) {
              result.longest_prefix.clear();
              for (const auto& f : stack)
                result.longest_prefix.push_back(f.entry->op);
              stuck_recorded = false;
            }
            unknown_pass = false;
            entry = head.next;
            continue;
          }
          bits[op / 64] &= ~(uint64_t{1} << (op % 64));
          hash ^= zobrist[op];
        }
      }
      entry = entry->next;
      continue;
    }
    // A return entry (or the end): the op it closes must be linearized before it.
    if (!unknown_pass && unknown_left > 0) {
      unknown_pass = true;
      entry = head.next;
      continue;
    }
    // Nothing before it can go next: backtrack.
    if (entry != nullptr && !stuck_recorded && stack.size() == result.longest_prefix.size()) {
      result.stuck = entry->op;
      stuck_recorded = true;
    }
    if (stack.empty()) {
      result.verdict = Verdict::invalid;
      return result;
    }
    Frame top;
    do {
      top = stack.back();
      stack.pop_back();
      state = top.state;
      const uint32_t op = top.entry->op;
      bits[op / 64] &= ~(uint64_t{1} << (op % 64));
      hash ^= zobrist[op];
      unlift(top.entry);
      ++(ops[op].ret ? remaining : unknown_left);
    } while (top.forced && !stack.empty());
    if (top.forced) {
      result.verdict = Verdict::invalid;
      return result;
    }
    unknown_pass = !ops[top.entry->op].ret;
    entry = top.entry->next;
  }
  result.longest_prefix.clear();
  for (const auto& f : stack)
    result.longest_prefix.push_back(f.entry->op);
  result.stuck.reset();
  return result;
}

// ---------------------------------------------------------------------------------------------
// Preparing a history for a model.

struct Partition {
  std::string key;
  std::vector<std::size_t> history_ops;
};

std::optional<std::chrono::nanoseconds> return_time(const Operation& op) {
  if (op.outcome == Outcome::info)
    return std::nullopt;
  return op.complete_time;
}

class Preparer {
 public:
  Preparer(const History& h, ModelKind model) : h_(h), model_(model) {}

  // Ops of a partition the model can use; returns false for ops to leave out.
  std::vector<PreparedOp> prepare(const std::vector<std::size_t>& op_indices,
                                  std::unordered_map<std::string, uint32_t>& keys) {
    std::vector<PreparedOp> out;
    out.reserve(op_indices.size());
    for (std::size_t i : op_indices) {
      const Operation& op = h_.ops[i];
      PreparedOp p;
      p.history_index = i;
      p.call = op.invoke_time;
      p.ret = return_time(op);
      const std::string key = op.key.value_or("");
      p.key = keys.try_emplace(key, static_cast<uint32_t>(keys.size())).first->second;
      const bool read_like = op.f == Function::read || op.f == Function::get;
      if (read_like) {
        if (op.outcome != Outcome::ok)
          continue;  // no result, no effect
        if (model_ == ModelKind::log) {
          p.action = Action::read_log;
          std::vector<uint32_t> log;
          for (const auto& v : op.values)
            log.push_back(values_.id(v));
          p.a = logs_.id(log);
        } else {
          p.action = Action::read;
          p.a = values_.id(normalize(op.value));
        }
      } else if (op.f == Function::write || op.f == Function::put) {
        if (op.outcome == Outcome::fail)
          continue;  // certainly did not happen
        p.action = Action::write;
        p.a = values_.id(normalize(op.value));
      } else if (op.f == Function::cas) {
        if (op.outcome == Outcome::fail) {
          p.action = Action::cas_fail;  // the compare did not match
        } else {
          p.action = Action::cas_ok;
        }
        p.a = values_.id(op.expected);
        p.b = values_.id(op.value);
      } else if (op.f == Function::append) {
        if (op.outcome == Outcome::fail)
          continue;
        p.action = Action::append;
        p.a = values_.id(normalize(op.value));
      } else {
        continue;
      }
      out.push_back(p);
    }
    return out;
  }

  uint32_t initial_value() {
    return values_.id(model_ == ModelKind::kv ? Value{std::string()} : Value{});
  }

  Interner<Value, ValueHash>& values() { return values_; }
  Interner<std::vector<uint32_t>, VectorHash>& logs() { return logs_; }

 private:
  // The kv model holds strings: nil is the empty string (a key's initial value) and an integer
  // stands for its decimal spelling, so a JSONL history may write numbers.
  Value normalize(const Value& v) const {
    if (model_ != ModelKind::kv)
      return v;
    if (std::holds_alternative<std::monostate>(v))
      return std::string();
    if (const auto* i = std::get_if<int64_t>(&v))
      return std::to_string(*i);
    return v;
  }

  const History& h_;
  ModelKind model_;
  Interner<Value, ValueHash> values_;
  Interner<std::vector<uint32_t>, VectorHash> logs_;
};

bool model_function(ModelKind m, Function f) {
  switch (m) {
    case ModelKind::cas_register:
      return f == Function::read || f == Function::write || f == Function::cas;
    case ModelKind::kv:
      return f == Function::get || f == Function::put || f == Function::append;
    case ModelKind::log:
      return f == Function::append || f == Function::read;
  }
  return false;
}

PartitionVerdict check_partition(const History& h, ModelKind model, const Partition& part,
                                 const LinearizabilityOptions& options, StopToken stop) {
  Preparer prep(h, model);
  std::unordered_map<std::string, uint32_t> keys;
  auto ops = prep.prepare(part.history_ops, keys);
  SearchResult r;
  const bool one_key = keys.size() <= 1;
  if (model == ModelKind::log) {
    LogModel m(prep.logs());
    r = search(ops, m, options, stop);
  } else if (model == ModelKind::kv) {
    StringModel inner(prep.values());
    if (one_key) {
      r = search(ops, inner, options, stop);
    } else {
      MapModel m(keys.size(), inner);
      r = search(ops, m, options, stop);
    }
  } else {
    RegisterModel inner(prep.initial_value());
    if (one_key) {
      r = search(ops, inner, options, stop);
    } else {
      MapModel m(keys.size(), inner);
      r = search(ops, m, options, stop);
    }
  }
  PartitionVerdict v;
  v.key = part.key;
  v.verdict = r.verdict;
  v.ops = part.history_ops;
  for (uint32_t i : r.longest_prefix)
    v.longest_prefix.push_back(ops[i].history_index);
  if (r.stuck) {
    v.stuck_op = ops[*r.stuck].history_index;
    const Operation& op = h.ops[*v.stuck_op];
    v.stuck_description =
        fmt::format("process {} {} {}{} (line {})", op.process, to_string(op.f),
                    op.f == Function::cas
                        ? fmt::format("[{} {}]", format_value(op.expected), format_value(op.value))
                        : format_value(op.value),
                    op.outcome == Outcome::fail ? " failed" : "", op.invoke_line);
  }
  return v;
}

}  // namespace

std::string_view to_string(ModelKind m) noexcept {
  switch (m) {
    case ModelKind::cas_register:
      return "cas-register";
    case ModelKind::kv:
      return "kv";
    case ModelKind::log:
      return "log";
  }
  return "?";
}

std::string_view to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::valid:
      return "valid";
    case Verdict::invalid:
      return "invalid";
    case Verdict::unknown:
      return "unknown";
  }
  return "?";
}

LinearizabilityResult check_linearizable(const History& history, ModelKind model,
                                         const LinearizabilityOptions& options) {
  LinearizabilityResult result;
  result.model = model;
  // Group by key (ordered, so reports are deterministic).
  std::map<std::string, Partition> by_key;
  for (const Operation& op : history.ops) {
    if (!model_function(model, op.f))
      continue;
    ++result.ops;
    const std::string key = options.partition_by_key ? op.key.value_or("") : "";
    auto& p = by_key[key];
    p.key = key;
    p.history_ops.push_back(op.index);
  }
  // Smallest partitions first: the first invalid one is then the smallest failing partition, and
  // the search can stop there (one hard, valid key need not be searched to the end).
  std::vector<const Partition*> order;
  order.reserve(by_key.size());
  for (const auto& [key, part] : by_key)
    order.push_back(&part);
  std::stable_sort(order.begin(), order.end(), [](const Partition* a, const Partition* b) {
    return a->history_ops.size() < b->history_ops.size();
  });
  const std::size_t n = order.size();
  result.partitions = n;
  std::vector<PartitionVerdict> verdicts(n);
  std::vector<char> checked(n, 0);
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> first_failure{n};
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < n;) {
      if (first_failure.load() < i)
        break;  // a smaller partition failed: nothing left to learn
      checked[i] = 1;
      if (options.deadline && std::chrono::steady_clock::now() >= *options.deadline) {
        verdicts[i].verdict = Verdict::unknown;
        continue;
      }
      verdicts[i] = check_partition(history, model, *order[i], options, {&first_failure, i});
      if (verdicts[i].verdict == Verdict::invalid) {
        std::size_t current = first_failure.load();
        while (i < current && !first_failure.compare_exchange_weak(current, i)) {
        }
      }
    }
  };
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t threads =
      std::min<std::size_t>(n, options.threads == 0 ? cores : options.threads);
  {
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < threads; ++t)
      pool.emplace_back(worker);
    worker();
  }  // joined
  bool unknown = false;
  if (first_failure.load() < n) {
    result.failing = std::move(verdicts[first_failure.load()]);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      unknown |= !checked[i] || verdicts[i].verdict == Verdict::unknown;
    }
  }
  result.verdict = result.failing ? Verdict::invalid : unknown ? Verdict::unknown : Verdict::valid;
  return result;
}

nlohmann::json LinearizabilityResult::to_json(const History& h) const {
  using nlohmann::json;
  json j;
  j["model"] = std::string(to_string(model));
  j["verdict"] = std::string(to_string(verdict));
  j["valid"] = verdict == Verdict::valid;
  j["ops"] = ops;
  j["partitions"] = partitions;
  if (failing) {
    auto describe = [&](std::size_t i) {
      const Operation& op = h.ops[i];
      json o;
      o["op"] = i;
      o["line"] = op.invoke_line;
      o["process"] = op.process.value();
      o["f"] = std::string(to_string(op.f));
      o["type"] = op.outcome == Outcome::ok ? "ok" : op.outcome == Outcome::fail ? "fail" : "info";
      o["value"] = format_value(op.value);
      if (op.f == Function::cas)
        o["expected"] = format_value(op.expected);
      return o;
    };
    json f;
    f["key"] = failing->key;
    f["ops"] = failing->ops.size();
    json prefix = json::array();
    for (auto i : failing->longest_prefix)
      prefix.push_back(describe(i));
    f["longest_linearizable_prefix"] = std::move(prefix);
    if (failing->stuck_op)
      f["cannot_place"] = describe(*failing->stuck_op);
    j["failing_partition"] = std::move(f);
  }
  return j;
}

std::string LinearizabilityResult::summary() const {
  std::string out = fmt::format("{} ({} model, {} ops in {} partition(s))", to_string(verdict),
                                to_string(model), ops, partitions);
  if (failing) {
    out += fmt::format(": key \"{}\" ({} ops) has a linearizable prefix of {} ops", failing->key,
                       failing->ops.size(), failing->longest_prefix.size());
    if (failing->stuck_op)
      out += fmt::format("; cannot place {}", failing->stuck_description);
  }
  return out;
}

}  // namespace faultline::checker
