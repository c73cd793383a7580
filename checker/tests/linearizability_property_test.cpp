// The engine (with its memo, P-compositionality and pruning) against a brute-force reference that
// tries every order, on thousands of small random histories with concurrency and unknown outcomes.
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>
#include <gtest/gtest.h>

#include <map>
#include <random>

namespace faultline::checker {
namespace {

// The model, spelled out on plain values: the state is key -> value.
using State = std::map<std::string, Value>;

std::optional<State> apply(const State& s, const Operation& op, ModelKind model) {
  const std::string key = op.key.value_or("");
  const Value initial = model == ModelKind::kv ? Value{std::string()} : Value{};
  const Value current = s.count(key) ? s.at(key) : initial;
  State next = s;
  switch (op.f) {
    case Function::read:
    case Function::get:
      if (current == op.value)
        return next;
      return std::nullopt;
    case Function::write:
    case Function::put:
      next[key] = op.value;
      return next;
    case Function::append:
      next[key] = std::get<std::string>(current) + std::get<std::string>(op.value);
      return next;
    case Function::cas:
      if (op.outcome == Outcome::fail) {
        if (current != op.expected)
          return next;
        return std::nullopt;
      }
      if (current != op.expected)
        return std::nullopt;
      next[key] = op.value;
      return next;
    default:
      return std::nullopt;
  }
}

// Ops that take part: what the engine's documentation promises.
bool takes_part(const Operation& op) {
  const bool read = op.f == Function::read || op.f == Function::get;
  if (read)
    return op.outcome == Outcome::ok;
  if (op.f == Function::cas)
    return true;
  return op.outcome != Outcome::fail;
}

bool brute_force(const std::vector<const Operation*>& ops, std::vector<bool>& done, const State& s,
                 ModelKind model) {
  bool all_known_done = true;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (!done[i] && ops[i]->outcome != Outcome::info)
      all_known_done = false;
  }
  if (all_known_done)
    return true;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (done[i])
      continue;
    // Every op that returned before this one was invoked must already be linearized.
    bool ready = true;
    for (std::size_t j = 0; j < ops.size() && ready; ++j) {
      if (!done[j] && j != i && ops[j]->outcome != Outcome::info &&
          *ops[j]->complete_time < ops[i]->invoke_time) {
        ready = false;
      }
    }
    if (!ready)
      continue;
    auto next = apply(s, *ops[i], model);
    if (!next)
      continue;
    done[i] = true;
    if (brute_force(ops, done, *next, model))
      return true;
    done[i] = false;
  }
  return false;
}

History random_history(std::mt19937_64& rng, ModelKind model, int processes, int ops_total) {
  std::vector<Event> events;
  std::vector<std::optional<Event>> pending(processes);
  int started = 0;
  int64_t t = 0;
  std::vector<int64_t> ids(processes);
  for (int i = 0; i < processes; ++i)
    ids[i] = i;
  int64_t next_id = processes;
  auto pick = [&](auto... options) {
    const Value values[] = {Value(options)...};
    return values[rng() % sizeof...(options)];
  };
  while (started < ops_total ||
         std::any_of(pending.begin(), pending.end(), [](auto& p) { return p.has_value(); })) {
    const int p = static_cast<int>(rng() % processes);
    Event e;
    e.process = ProcessId(ids[p]);
    e.time = std::chrono::nanoseconds(++t);
    if (!pending[p]) {
      if (started >= ops_total)
        continue;
      ++started;
      e.type = EventType::invoke;
      if (model == ModelKind::cas_register) {
        const int r = static_cast<int>(rng() % 3);
        e.f = r == 0 ? Function::read : r == 1 ? Function::write : Function::cas;
        if (e.f == Function::write)
          e.value = pick(int64_t{0}, int64_t{1}, int64_t{2});
        if (e.f == Function::cas) {
          e.expected = pick(std::monostate{}, int64_t{0}, int64_t{1});
          e.value = pick(int64_t{0}, int64_t{1}, int64_t{2});
        }
      } else {
        const int r = static_cast<int>(rng() % 3);
        e.f = r == 0 ? Function::get : r == 1 ? Function::put : Function::append;
        e.key = rng() % 2 ? "a" : "b";
        if (e.f != Function::get)
          e.value = pick(std::string("x"), std::string("y"));
      }
      pending[p] = e;
      events.push_back(e);
      continue;
    }
    const Event inv = *pending[p];
    pending[p].reset();
    const unsigned roll = static_cast<unsigned>(rng() % 10);
    e.type = roll < 7 ? EventType::ok : roll < 8 ? EventType::fail : EventType::info;
    if (roll == 9 && rng() % 2) {
      ids[p] = next_id++;  // the client crashed, its op never completes; a new one takes over
      continue;
    }
    e.f = inv.f;
    e.key = inv.key;
    if (e.type == EventType::ok && (e.f == Function::read || e.f == Function::get)) {
      e.value = model == ModelKind::cas_register
                    ? pick(std::monostate{}, int64_t{0}, int64_t{1}, int64_t{2})
                    : pick(std::string(), std::string("x"), std::string("y"), std::string("xy"),
                           std::string("yx"), std::string("xx"));
    }
    events.push_back(e);
  }
  auto h = build_history(std::move(events));
  EXPECT_TRUE(h.has_value());
  return std::move(h).value();
}

void compare_with_brute_force(ModelKind model, uint64_t seeds) {
  int valid = 0, invalid = 0;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    std::mt19937_64 rng(seed);
    const History h = random_history(rng, model, 4, 10);
    std::vector<const Operation*> ops;
    for (const auto& op : h.ops) {
      if (takes_part(op))
        ops.push_back(&op);
    }
    std::vector<bool> done(ops.size(), false);
    const bool expected = brute_force(ops, done, State{}, model);
    for (bool partition : {true, false}) {
      LinearizabilityOptions o;
      o.partition_by_key = partition;
      const auto r = check_linearizable(h, model, o);
      ASSERT_EQ(r.verdict == Verdict::valid, expected)
          << "seed " << seed << " partition=" << partition << ": " << r.summary();
    }
    (expected ? valid : invalid)++;
  }
  // The generator must exercise both verdicts, or this test proves little.
  EXPECT_GT(valid, static_cast<int>(seeds / 20));
  EXPECT_GT(invalid, static_cast<int>(seeds / 20));
}

TEST(LinearizabilityProperty, CasRegisterAgreesWithBruteForce) {
  compare_with_brute_force(ModelKind::cas_register, 3000);
}

TEST(LinearizabilityProperty, KeyValueAgreesWithBruteForce) {
  compare_with_brute_force(ModelKind::kv, 3000);
}

// Any parseable history, whatever its functions and value types, gets a verdict from every model
// and from the Kafka checker: no crash, no exception.
TEST(CheckerRobustness, MixedFunctionsAndValueTypesNeverCrash) {
  const Function functions[] = {Function::send, Function::poll,  Function::seek,
                                Function::read, Function::write, Function::cas,
                                Function::get,  Function::put,   Function::append};
  for (uint64_t seed = 1; seed <= 500; ++seed) {
    std::mt19937_64 rng(seed);
    auto random_value = [&]() -> Value {
      switch (rng() % 3) {
        case 0:
          return Value{};
        case 1:
          return Value{static_cast<int64_t>(rng() % 4)};
        default:
          return Value{std::string(rng() % 2 ? "a" : "ab")};
      }
    };
    std::vector<Event> events;
    int64_t t = 0;
    for (int i = 0; i < 12; ++i) {
      Event inv{};
      inv.type = EventType::invoke;
      inv.process = ProcessId(i % 3 + 3 * (i / 3));
      inv.f = functions[rng() % std::size(functions)];
      inv.time = std::chrono::nanoseconds(++t);
      inv.partition = PartitionId(static_cast<int32_t>(rng() % 2));
      if (rng() % 2)
        inv.key = rng() % 2 ? "k" : "j";
      inv.value = inv.f == Function::send ? Value{static_cast<int64_t>(i)} : random_value();
      inv.expected = random_value();
      if (inv.f == Function::seek)
        inv.offset = Offset(static_cast<int64_t>(rng() % 3));
      events.push_back(inv);
      Event done = inv;
      done.type = static_cast<EventType>(1 + rng() % 3);
      done.time = std::chrono::nanoseconds(++t);
      done.value = random_value();
      done.offset = Offset(static_cast<int64_t>(rng() % 3));
      done.records = {
          Record{Offset(static_cast<int64_t>(rng() % 3)), static_cast<int64_t>(rng() % 12)}};
      done.values = {random_value()};
      if (rng() % 4)
        events.push_back(done);
    }
    auto h = build_history(events);
    ASSERT_TRUE(h) << h.error().to_string();
    for (ModelKind m : {ModelKind::cas_register, ModelKind::kv, ModelKind::log}) {
      for (bool partition : {true, false}) {
        LinearizabilityOptions o;
        o.partition_by_key = partition;
        const auto r = check_linearizable(*h, m, o);
        EXPECT_FALSE(r.summary().empty());
        EXPECT_FALSE(r.to_json(*h).dump().empty());
      }
    }
    const auto k = check_kafka(*h);
    EXPECT_FALSE(k.to_json().dump().empty());
  }
}

}  // namespace
}  // namespace faultline::checker
