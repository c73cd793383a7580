// Partition geometry (pure) and the nftables text that enforces it.
//
// A partition is a set of directed blocks: (from, to) means packets sent by `from` to `to` are
// dropped. Symmetric partitions block both directions; one-way blocks one, majorities-ring can be
// asymmetric for an even majority (as in Jepsen, where each node drops what it refuses to hear).
//
// Enforcement (render_partition_ruleset) is per node, inside that node's namespace: its output
// chain drops packets to peers it must not reach, its input chain drops packets from peers it must
// not hear. A block (A,B) is thus enforced twice, in A's output and B's input, so either side alone
// holds the fault.
//
// One-way and TCP: blocking A->B only means A's segments never arrive at B. A cannot connect to B
// (its SYN is lost). B cannot complete a connection to A either: B's SYN arrives, but A's SYN-ACK
// is dropped. On an established connection B's data reaches A, but A's ACKs do not reach B, so B
// retransmits until its retransmission timeout kills the connection, while A sees its own sends go
// unanswered. Only datagram traffic (UDP) shows B->A flowing; verify one-way faults with UDP.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos {

using Block = std::pair<NodeName, NodeName>;  // (from, to): from's packets to `to` are dropped

struct PartitionPlan {
  std::set<Block> blocks;
  // Human-readable grouping for logs and faults.jsonl, e.g. [["b-1"],["b-2","b-3","ctl-1"]].
  std::vector<std::vector<NodeName>> groups;

  bool can_reach(const NodeName& from, const NodeName& to) const {
    return blocks.count({from, to}) == 0;
  }
};

// Every node cut off from every node of another group, both ways.
PartitionPlan plan_groups(std::vector<std::vector<NodeName>> groups);
// `node` against everyone else in `all`.
PartitionPlan plan_isolate(const NodeName& node, const std::vector<NodeName>& all);
// First ceil(n/2) nodes (in the order given) against the rest. Callers shuffle with their seed.
PartitionPlan plan_halves(const std::vector<NodeName>& ordered);
// Jepsen's majorities ring: with n nodes in ring order and majority m = n/2+1, node i hears
// exactly the m consecutive nodes centred on it. Every node sees a majority, all majorities differ.
PartitionPlan plan_majorities_ring(const std::vector<NodeName>& ring);
// Two halves and the middle node (ordered[n/2]) that talks to both.
PartitionPlan plan_bridge(const std::vector<NodeName>& ordered);
// `from` cannot reach `to`; `to` still reaches `from` (see the TCP note above).
PartitionPlan plan_one_way(const NodeName& from, const NodeName& to);
// The leader cut from each follower (both ways); everyone else (controllers, clients) untouched.
PartitionPlan plan_isolate_leader(const NodeName& leader, const std::vector<NodeName>& followers);

// The plan for a partition FaultSpec; `all` is every node of the run (used by isolate and when a
// shape is given no explicit targets). Precondition: validate(spec) passed.
PartitionPlan plan_partition(const FaultSpec& spec, const std::vector<NodeName>& all);

// Peers whose packets `node` drops on input / output.
struct NodeDrops {
  std::set<NodeName> drop_from;
  std::set<NodeName> drop_to;
  bool empty() const { return drop_from.empty() && drop_to.empty(); }
};
std::map<NodeName, NodeDrops> drops_per_node(const PartitionPlan& plan);

// nft identifiers: letters, digits, underscore. `prefix_f<id>`, with '-' turned into '_'.
std::string nft_table_name(const std::string& run_prefix, uint64_t fault_id);

// `add table inet T` + chains + drop rules by peer IPv4 address. Addresses of a peer = all its
// interfaces' addresses. Returns "" when the node has nothing to drop.
std::string render_partition_ruleset(const std::string& table, const NodeDrops& drops,
                                     const std::map<NodeName, std::vector<std::string>>& addresses);

// Rule, in a receiver's namespace, sending what arrives on `interface` from `sender_addresses`
// (all senders when empty) to NFQUEUE `queue`, skipping packets marked `reinject_mark` (the
// shaper's own duplicates). `bypass`: if no shaper is listening, packets pass instead of being
// dropped.
std::string render_shaper_ruleset(const std::string& table, const std::string& interface,
                                  const std::vector<std::string>& sender_addresses, uint16_t queue,
                                  uint32_t reinject_mark);

}  // namespace faultline::chaos
