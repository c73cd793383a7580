#include "faultline/chaos/runner/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "faultline/chaos/faults/partition.h"

namespace faultline::chaos {

namespace {

using std::chrono::milliseconds;

// A round never starts before the previous one's last planned heal plus this settling time.
constexpr milliseconds kSettle{500};

// Lays a nemesis tree out in time. One instance per make_schedule call; every draw comes from
// `rng` in tree order, so a seed gives one schedule.
struct Layout {
  std::mt19937_64& rng;
  int partitions = 1;
  milliseconds duration{0};
  int round = 0;
  int any_partition = 0;

  void new_round() {
    ++round;
    any_partition = static_cast<int>(rng() % static_cast<uint64_t>(std::max(partitions, 1)));
  }

  PartitionRef bind(PartitionRef p) const {
    if (p.kind == PartitionRef::Kind::any)
      return {PartitionRef::Kind::index, any_partition};
    return p;
  }

  FaultStep bind(FaultStep step) const {
    step.target.partition = bind(step.target.partition);
    if (step.peers)
      step.peers->partition = bind(step.peers->partition);
    if (step.on)
      step.on->partition = bind(step.on->partition);
    return step;
  }

  // Plans `n` to start at `start` into `out`; returns the latest planned heal of what it planned.
  milliseconds lay(const NemesisNode& n, milliseconds start, std::vector<PlannedStep>& out) {
    switch (n.type) {
      case NemesisNode::Type::step: {
        PlannedStep p{start, bind(n.step), round, rng()};
        out.push_back(p);
        return planned_end(p);
      }
      case NemesisNode::Type::sequence: {
        milliseconds at = start, end = start;
        for (const auto& c : n.children) {
          at += c.after;
          end = std::max(end, lay(c, at, out));
        }
        return end;
      }
      case NemesisNode::Type::concurrent: {
        milliseconds end = start;
        for (const auto& c : n.children)
          end = std::max(end, lay(c, start + c.after, out));
        return end;
      }
      case NemesisNode::Type::choice: {
        const NemesisNode& c = pick(n.children);
        return lay(c, start + c.after, out);
      }
      case NemesisNode::Type::repeat:
        return lay_rounds(n, start, out);
    }
    return start;
  }

  const NemesisNode& pick(const std::vector<NemesisNode>& children) {
    std::vector<double> weights;
    weights.reserve(children.size());
    for (const auto& c : children)
      weights.push_back(c.weight);
    std::discrete_distribution<size_t> d(weights.begin(), weights.end());
    return children[d(rng)];
  }

  // Rounds every `every` (plus jitter) after one interval of calm, until a round would heal after
  // the run ends; each round draws its own `any` partition.
  milliseconds lay_rounds(const NemesisNode& n, milliseconds start, std::vector<PlannedStep>& out) {
    milliseconds end = start;
    const NemesisNode& body = n.children.front();
    for (int k = 1; n.times == 0 || k <= n.times; ++k) {
      std::uniform_int_distribution<int64_t> jitter(0, n.jitter.count());
      milliseconds at = start + n.every * k + milliseconds(jitter(rng));
      if (k > 1)
        at = std::max(at, end + kSettle);
      if (at >= duration)
        break;
      new_round();
      std::vector<PlannedStep> planned;
      milliseconds round_end = lay(body, at + body.after, planned);
      if (round_end >= duration)
        break;
      out.insert(out.end(), planned.begin(), planned.end());
      end = round_end;
    }
    return end;
  }
};

std::string node(int broker) {
  return broker_node(broker);
}

std::vector<int> all_broker_ids(const ClusterSnapshot& s) {
  std::vector<int> ids;
  for (int b = 1; b <= s.brokers; ++b)
    ids.push_back(b);
  return ids;
}

// The partitions a reference names that the snapshot knows.
std::vector<const PartitionView*> partitions_of(const PartitionRef& ref, const ClusterSnapshot& s,
                                                std::mt19937_64& rng) {
  std::vector<const PartitionView*> out;
  switch (ref.kind) {
    case PartitionRef::Kind::index:
      if (auto it = s.partitions.find(ref.index); it != s.partitions.end())
        out.push_back(&it->second);
      break;
    case PartitionRef::Kind::all:
      for (const auto& [p, view] : s.partitions)
        out.push_back(&view);
      break;
    case PartitionRef::Kind::any:
      if (!s.partitions.empty()) {
        auto it = s.partitions.begin();
        std::advance(it, static_cast<long>(rng() % s.partitions.size()));
        out.push_back(&it->second);
      }
      break;
  }
  return out;
}

std::vector<int> followers_of(const PartitionView& v) {
  std::vector<int> out;
  if (v.leader < 1)
    return out;
  for (int r : v.replicas)
    if (r != v.leader)
      out.push_back(r);
  return out;
}

void add_unique(std::vector<int>& ids, int id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end())
    ids.push_back(id);
}

int pick_one(const std::vector<int>& ids, std::mt19937_64& rng) {
  return ids[rng() % ids.size()];
}

std::vector<int> select_brokers(const Selector& sel, const ClusterSnapshot& s,
                                std::mt19937_64& rng) {
  std::vector<int> ids;
  auto parts = partitions_of(sel.partition, s, rng);
  switch (sel.kind) {
    case SelectorKind::leader:
      for (const auto* v : parts)
        if (v->leader >= 1)
          add_unique(ids, v->leader);
      break;
    case SelectorKind::followers:
      for (const auto* v : parts)
        for (int f : followers_of(*v))
          add_unique(ids, f);
      break;
    case SelectorKind::follower:
      for (const auto* v : parts)
        if (auto f = followers_of(*v); !f.empty())
          add_unique(ids, pick_one(f, rng));
      break;
    case SelectorKind::lagging_follower:
      for (const auto* v : parts) {
        std::vector<int> lagging;
        for (int r : v->replicas)
          if (r != v->leader && std::find(v->isr.begin(), v->isr.end(), r) == v->isr.end())
            lagging.push_back(r);
        if (!lagging.empty())
          add_unique(ids, pick_one(lagging, rng));
      }
      break;
    case SelectorKind::preferred_leader:
      for (const auto* v : parts)
        if (!v->replicas.empty())
          add_unique(ids, v->replicas.front());
      break;
    case SelectorKind::broker:
      if (sel.broker >= 1 && sel.broker <= s.brokers)
        ids.push_back(sel.broker);
      break;
    case SelectorKind::random_broker: {
      std::vector<int> pool(s.alive.begin(), s.alive.end());
      if (pool.empty())
        pool = all_broker_ids(s);
      if (!pool.empty())
        ids.push_back(pick_one(pool, rng));
      break;
    }
    case SelectorKind::minority:
    case SelectorKind::majority: {
      ids = all_broker_ids(s);
      std::shuffle(ids.begin(), ids.end(), rng);
      size_t n = sel.kind == SelectorKind::minority ? (ids.size() - 1) / 2 : ids.size() / 2 + 1;
      ids.resize(std::min(n, ids.size()));
      break;
    }
    case SelectorKind::all_brokers:
    case SelectorKind::all_nodes:
      ids = all_broker_ids(s);
      break;
    default:  // controllers: select_controllers
      break;
  }
  return ids;
}

// The controllers a selector names (1-based), in a seeded order where it picks.
std::vector<int> select_controllers(const Selector& sel, const ClusterSnapshot& s,
                                    std::mt19937_64& rng) {
  std::vector<int> ids;
  const int active = active_controller(s);
  switch (sel.kind) {
    case SelectorKind::controller:
    case SelectorKind::active_controller:
      if (active > 0)
        ids.push_back(active);
      break;
    case SelectorKind::controller_follower: {
      std::vector<int> live;
      for (int c : live_controllers(s))
        if (c != active)
          live.push_back(c);
      if (!live.empty())
        ids.push_back(pick_one(live, rng));
      break;
    }
    case SelectorKind::controller_minority: {
      // A minority that holds the active controller: cut off, it must step down.
      const size_t n = static_cast<size_t>(std::max(s.controllers - 1, 0) / 2);
      if (active == 0 || n == 0)
        break;
      std::vector<int> others;
      for (int c = 1; c <= s.controllers; ++c)
        if (c != active)
          others.push_back(c);
      std::shuffle(others.begin(), others.end(), rng);
      ids.push_back(active);
      ids.insert(ids.end(), others.begin(), others.begin() + static_cast<long>(n - 1));
      break;
    }
    case SelectorKind::all_controllers:
      for (int c = 1; c <= s.controllers; ++c)
        ids.push_back(c);
      break;
    case SelectorKind::all_nodes:
      for (int c : live_controllers(s))
        ids.push_back(c);
      break;
    default:
      break;
  }
  return ids;
}

std::string why_empty(const Selector& sel, const ClusterSnapshot& s) {
  if (sel.kind == SelectorKind::controller_minority && s.controllers < 3)
    return fmt::format("a quorum of {} controller{} has no minority", s.controllers,
                       s.controllers == 1 ? "" : "s");
  if (sel.kind == SelectorKind::controller_follower)
    return s.controllers == 1 ? "a quorum of one controller has no follower"
                              : "no live controller besides the active one";
  if (is_controller_selector(sel.kind))
    return s.controllers == 1 ? "the controller is down"
                              : "no controller is active (an election is under way, or a "
                                "majority of the quorum is down or cut off)";
  if (sel.kind == SelectorKind::broker)
    return fmt::format("there is no broker {} (brokers 1..{})", sel.broker, s.brokers);
  if (sel.partition.kind == PartitionRef::Kind::index &&
      s.partitions.find(sel.partition.index) == s.partitions.end())
    return fmt::format("partition {} is not in the metadata", sel.partition.index);
  return "nothing matches now";
}

std::string describe(const Selector& sel, const std::vector<std::string>& nodes) {
  return fmt::format("{}={}", sel.str(), fmt::join(nodes, ","));
}

// isolate-leader cuts its first target from the others; without explicit peers those are the
// target partition's followers (or every other broker when the target is not a partition's).
// (A controller's default peers are every broker, as for any target that leads no partition.)
std::vector<std::string> default_isolation_peers(const FaultStep& step, const ClusterSnapshot& s,
                                                 const std::string& target, std::mt19937_64& rng) {
  std::vector<std::string> peers;
  if (step.target.kind == SelectorKind::leader ||
      step.target.kind == SelectorKind::preferred_leader) {
    Selector followers{SelectorKind::followers, step.target.partition, 0};
    for (int b : select_brokers(followers, s, rng))
      if (node(b) != target)
        peers.push_back(node(b));
  }
  if (peers.empty())
    for (int b : all_broker_ids(s))
      if (node(b) != target)
        peers.push_back(node(b));
  return peers;
}

// The leaders a step's target hits, for the leadership checks.
std::map<int, int> leaders_hit(const FaultStep& step, const ClusterSnapshot& s,
                               const std::vector<std::string>& nodes) {
  std::map<int, int> out;
  if (step.target.kind != SelectorKind::leader &&
      step.target.kind != SelectorKind::preferred_leader)
    return out;
  for (const auto& [p, v] : s.partitions) {
    if (v.leader < 1)
      continue;
    bool named = step.target.partition.kind == PartitionRef::Kind::all ||
                 (step.target.partition.kind == PartitionRef::Kind::index &&
                  step.target.partition.index == p);
    if (named && std::find(nodes.begin(), nodes.end(), node(v.leader)) != nodes.end())
      out[p] = v.leader;
  }
  return out;
}

}  // namespace

milliseconds planned_end(const PlannedStep& p) {
  return p.at + (p.step.on ? p.step.on->within : milliseconds(0)) + p.step.hold;
}

std::vector<PlannedStep> make_schedule(const Scenario& s, uint64_t seed) {
  std::vector<PlannedStep> out;
  if (!s.nemesis)
    return out;
  std::mt19937_64 rng(sub_seed(seed, "schedule"));
  Layout layout{rng, s.workload.partitions, std::chrono::duration_cast<milliseconds>(s.duration)};
  layout.new_round();
  layout.lay(*s.nemesis, s.nemesis->after, out);
  // Outside rounds (a plain sequence), a step that would heal after the run is dropped alone.
  std::erase_if(out, [&](const PlannedStep& p) { return planned_end(p) >= layout.duration; });
  std::stable_sort(out.begin(), out.end(),
                   [](const PlannedStep& a, const PlannedStep& b) { return a.at < b.at; });
  return out;
}

nlohmann::json to_json(const PlannedStep& p) {
  nlohmann::json j = {{"at_ms", p.at.count()},
                      {"heal_ms", (p.at + p.step.hold).count()},
                      {"round", p.round},
                      {"fault", std::string(to_string(p.step.kind))},
                      {"target", p.step.target.str()},
                      {"params", to_json(FaultSpec{p.step.kind, {}, p.step.params})["params"]}};
  if (p.step.peers)
    j["peers"] = p.step.peers->str();
  if (p.step.on) {
    j["on"] = p.step.on->str();
    j["within_ms"] = p.step.on->within.count();
  }
  return j;
}

std::vector<std::string> select_nodes(const Selector& sel, const ClusterSnapshot& snapshot,
                                      std::mt19937_64& rng) {
  std::vector<std::string> out;
  for (int c : select_controllers(sel, snapshot, rng))
    out.push_back(controller_node(c));
  if (is_controller_selector(sel.kind))
    return out;
  for (int b : select_brokers(sel, snapshot, rng))
    out.push_back(node(b));
  return out;
}

std::string controller_node(int controller) {
  return fmt::format("c{}", controller);
}
std::string broker_node(int broker) {
  return fmt::format("b{}", broker);
}

int active_controller(const ClusterSnapshot& s) {
  if (s.active_controller > 0)
    return s.active_controller;
  return s.controllers == 1 && s.controllers_up.empty() && s.controller_up ? 1 : 0;
}

std::set<int> live_controllers(const ClusterSnapshot& s) {
  if (!s.controllers_up.empty())
    return s.controllers_up;
  if (s.controllers == 1 && s.controller_up)
    return {1};
  return {};
}

Resolution resolve(const FaultStep& step, const ClusterSnapshot& snapshot, uint64_t variant) {
  std::mt19937_64 rng(variant);
  Resolution r;
  auto targets = select_nodes(step.target, snapshot, rng);
  if (targets.empty()) {
    r.skipped = fmt::format("target {} matches nothing: {}", step.target.str(),
                            why_empty(step.target, snapshot));
    return r;
  }
  r.targets_desc = describe(step.target, targets);
  std::vector<std::string> peers;
  if (step.peers) {
    peers = select_nodes(*step.peers, snapshot, rng);
    std::erase_if(peers, [&](const std::string& p) { return p == targets.front(); });
    if (peers.empty()) {
      r.skipped = fmt::format("peers {} match nothing: {}", step.peers->str(),
                              why_empty(*step.peers, snapshot));
      return r;
    }
    r.targets_desc += " peers " + describe(*step.peers, peers);
  }
  switch (step.kind) {
    case FaultKind::halves:
    case FaultKind::majorities_ring:
    case FaultKind::bridge:
      std::shuffle(targets.begin(), targets.end(), rng);
      r.specs.push_back({step.kind, targets, step.params});
      break;
    case FaultKind::one_way:
      r.specs.push_back({step.kind, {targets.front(), peers.front()}, step.params});
      break;
    case FaultKind::power_loss:
      // Several brokers lose power together: every one is killed before any loses its data.
      r.specs.push_back({step.kind, targets, step.params});
      break;
    case FaultKind::isolate_leader: {
      if (peers.empty())
        peers = default_isolation_peers(step, snapshot, targets.front(), rng);
      std::vector<NodeName> nodes{targets.front()};
      nodes.insert(nodes.end(), peers.begin(), peers.end());
      r.specs.push_back({step.kind, nodes, step.params});
      break;
    }
    default:
      // Every other kind hits each selected node on its own.
      for (const auto& t : targets) {
        FaultSpec spec{step.kind, {t}, step.params};
        if (auto* p = std::get_if<PacketParams>(&spec.params); p && !peers.empty())
          p->peers = peers;
        r.specs.push_back(std::move(spec));
      }
  }
  for (const auto& spec : r.specs) {
    std::string why;
    if (validate(spec, &why)) {
      r.specs.clear();
      r.skipped = fmt::format("{} on {}: {}", to_string(step.kind), r.targets_desc, why);
      return r;
    }
  }
  std::vector<NodeName> all_nodes;
  for (int c = 1; c <= snapshot.controllers; ++c) {
    all_nodes.push_back(controller_node(c));
    r.controllers.push_back(all_nodes.back());
  }
  // A lone controller is the one whatever it answered (the checks that use it stay as they were).
  if (int active = snapshot.controllers == 1 ? 1 : active_controller(snapshot); active > 0)
    r.active_controller = controller_node(active);
  for (int b = 1; b <= snapshot.brokers; ++b)
    all_nodes.push_back(node(b));
  for (const auto& spec : r.specs) {
    if (fault_class(spec.kind) == FaultClass::partition) {
      const auto plan = plan_partition(spec, all_nodes);
      r.cut.insert(plan.blocks.begin(), plan.blocks.end());
      continue;
    }
    r.touched.insert(spec.targets.begin(), spec.targets.end());
    if (const auto* packets = std::get_if<PacketParams>(&spec.params))
      r.touched.insert(packets->peers.begin(), packets->peers.end());
  }
  r.partitions = snapshot.partitions;
  r.leaders_hit = leaders_hit(step, snapshot, targets);
  for (auto [p, leader] : r.leaders_hit) {
    const auto& isr = snapshot.partitions.at(p).isr;
    for (int b : isr)
      if (b != leader && snapshot.alive.count(b) &&
          std::find(targets.begin(), targets.end(), node(b)) == targets.end())
        r.successor_available.insert(p);
  }
  return r;
}

std::vector<int> untouched_partitions(int min_insync, const Reach& reach,
                                      const std::map<int, PartitionView>& partitions) {
  std::vector<int> out;
  // The quorum goes on deciding (fencing, ISR changes) only with its active controller and a
  // majority linked with it.
  const std::string& active = reach.active_controller;
  if (active.empty() || reach.touched.count(active))
    return out;
  const auto with_active =
      std::count_if(reach.controllers.begin(), reach.controllers.end(), [&](const std::string& c) {
        return !reach.touched.count(c) && (c == active || reach.linked(active, c));
      });
  if (2 * static_cast<size_t>(with_active) <= reach.controllers.size())
    return out;
  for (const auto& [p, v] : partitions) {
    if (v.leader < 1)
      continue;
    const std::string leader = node(v.leader);
    if (reach.touched.count(leader) || !reach.linked(leader, active))
      continue;
    const auto quorum = std::count_if(v.isr.begin(), v.isr.end(), [&](int b) {
      const std::string member = node(b);
      return !reach.touched.count(member) && (member == leader || reach.linked(leader, member));
    });
    if (quorum >= min_insync)
      out.push_back(p);
  }
  return out;
}

bool trigger_fired(const Trigger& t, const ClusterSnapshot& armed, const ClusterSnapshot& now) {
  if (t.kind == TriggerKind::fenced) {
    for (int b : now.fenced)
      if (!armed.fenced.count(b))
        return true;
    return false;
  }
  if (t.kind == TriggerKind::controller_change) {
    const int active = active_controller(now);
    return active > 0 &&
           (active != active_controller(armed) || now.controller_epoch != armed.controller_epoch);
  }
  for (const auto& [p, view] : now.partitions) {
    if (t.partition.kind == PartitionRef::Kind::index && t.partition.index != p)
      continue;
    auto before = armed.partitions.find(p);
    PartitionView was = before == armed.partitions.end() ? PartitionView{} : before->second;
    if (t.kind == TriggerKind::leader_change && view.leader >= 1 &&
        (view.leader != was.leader || view.epoch != was.epoch))
      return true;
    if (t.kind == TriggerKind::isr_shrink)
      for (int r : was.isr)
        if (std::find(view.isr.begin(), view.isr.end(), r) == view.isr.end())
          return true;
    if (t.kind == TriggerKind::isr_expand && !was.isr.empty())
      for (int r : view.isr)
        if (std::find(was.isr.begin(), was.isr.end(), r) == was.isr.end())
          return true;
  }
  return false;
}

}  // namespace faultline::chaos
