// The linearizability engine on small JSONL histories for each model, table-driven.
#include <faultline/checker/linearizability.h>
#include <gtest/gtest.h>

namespace faultline::checker {
namespace {

// A compact history notation: each line `P type f args` at increasing times, e.g.
//   "0 invoke write 1", "0 ok write", "1 invoke cas 1 2", "1 fail cas", "2 ok read 1".
// Values: integers, `nil`, or strings for kv (`k=...` sets the key).
History parse(const std::vector<std::string>& lines) {
  std::string text = "{\"faultline_history\":1}\n";
  int64_t t = 1;
  for (const auto& l : lines) {
    std::istringstream in(l);
    std::string process, type, f, a, b;
    in >> process >> type >> f;
    nlohmann::json j{{"type", type}, {"process", std::stoll(process)}, {"f", f}, {"time_ns", t++}};
    std::vector<nlohmann::json> args;
    std::string word;
    while (in >> word) {
      if (word.rfind("k=", 0) == 0) {
        j["key"] = word.substr(2);
      } else if (word == "nil") {
        args.push_back(nullptr);
      } else if (word.rfind("s:", 0) == 0) {
        args.push_back(word.substr(2));
      } else if (word.rfind("[", 0) == 0) {
        nlohmann::json arr = nlohmann::json::array();
        std::string inner = word.substr(1, word.size() - 2);
        std::istringstream items(inner);
        std::string item;
        while (std::getline(items, item, ',')) {
          if (!item.empty())
            arr.push_back(std::stoll(item));
        }
        j["values"] = arr;
      } else {
        args.push_back(std::stoll(word));
      }
    }
    if (f == "cas" && args.size() == 2) {
      j["value"] = args;
    } else if (args.size() == 1) {
      j["value"] = args[0];
    }
    text += j.dump() + "\n";
  }
  auto h = parse_jsonl(text);
  EXPECT_TRUE(h) << h.error().to_string();
  return std::move(h).value();
}

struct Case {
  std::string name;
  ModelKind model;
  std::vector<std::string> history;
  Verdict expected;
};

// Test names in ctest are the case names, not the bytes of the parameter.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class Linearizability : public ::testing::TestWithParam<Case> {};

TEST_P(Linearizability, Verdict) {
  const auto& c = GetParam();
  const History h = parse(c.history);
  for (bool partition : {true, false}) {
    LinearizabilityOptions o;
    o.partition_by_key = partition;
    auto r = check_linearizable(h, c.model, o);
    EXPECT_EQ(r.verdict, c.expected) << c.name << " partition=" << partition << ": " << r.summary();
  }
}

const auto M = ModelKind::cas_register;
const auto KV = ModelKind::kv;
const auto LOG = ModelKind::log;

INSTANTIATE_TEST_SUITE_P(
    Models, Linearizability,
    ::testing::Values(
        Case{"empty", M, {}, Verdict::valid},
        Case{"read of unset register", M, {"0 invoke read", "0 ok read nil"}, Verdict::valid},
        Case{"sequential write read",
             M,
             {"0 invoke write 1", "0 ok write", "1 invoke read", "1 ok read 1"},
             Verdict::valid},
        Case{"stale read",
             M,
             {"0 invoke write 1", "0 ok write", "0 invoke write 2", "0 ok write", "1 invoke read",
              "1 ok read 1"},
             Verdict::invalid},
        Case{"concurrent read may see either",
             M,
             {"0 invoke write 1", "1 invoke read", "1 ok read nil", "0 ok write"},
             Verdict::valid},
        Case{"read from the future",
             M,
             {"1 invoke read", "1 ok read 1", "0 invoke write 1", "0 ok write"},
             Verdict::invalid},
        Case{"cas success",
             M,
             {"0 invoke write 1", "0 ok write", "0 invoke cas 1 2", "0 ok cas", "1 invoke read",
              "1 ok read 2"},
             Verdict::valid},
        Case{"failed cas although the value matched",
             M,
             {"0 invoke write 1", "0 ok write", "0 invoke cas 1 2", "0 fail cas"},
             Verdict::invalid},
        Case{"unknown write takes effect later",
             M,
             {"0 invoke write 1", "0 info write", "1 invoke read", "1 ok read nil", "1 invoke read",
              "1 ok read 1"},
             Verdict::valid},
        Case{"unknown write never takes effect",
             M,
             {"0 invoke write 1", "0 info write", "1 invoke read", "1 ok read nil"},
             Verdict::valid},
        Case{"open write at the end is unknown",
             M,
             {"0 invoke write 1", "1 invoke read", "1 ok read 1"},
             Verdict::valid},
        Case{"unknown write cannot take effect twice",
             M,
             {"2 invoke write 3", "2 ok write", "0 invoke write 1", "0 info write", "1 invoke read",
              "1 ok read 1", "2 invoke write 3", "2 ok write", "1 invoke read", "1 ok read 1"},
             Verdict::invalid},
        Case{"failed write never happened",
             M,
             {"0 invoke write 1", "0 fail write", "1 invoke read", "1 ok read 1"},
             Verdict::invalid},
        Case{"kv keys are independent",
             KV,
             {"0 invoke put k=a s:x", "0 ok put", "1 invoke put k=b s:y", "1 ok put",
              "2 invoke get k=a", "2 ok get k=a s:x", "2 invoke get k=b", "2 ok get k=b s:y"},
             Verdict::valid},
        Case{"kv append concatenates",
             KV,
             {"0 invoke append k=a s:x", "0 ok append", "1 invoke append k=a s:y", "1 ok append",
              "2 invoke get k=a", "2 ok get k=a s:xy"},
             Verdict::valid},
        Case{"kv append order is real-time order",
             KV,
             {"0 invoke append k=a s:x", "0 ok append", "1 invoke append k=a s:y", "1 ok append",
              "2 invoke get k=a", "2 ok get k=a s:yx"},
             Verdict::invalid},
        Case{"kv concurrent appends in either order",
             KV,
             {"0 invoke append k=a s:x", "1 invoke append k=a s:y", "0 ok append", "1 ok append",
              "2 invoke get k=a", "2 ok get k=a s:yx"},
             Verdict::valid},
        Case{"kv pieces that spell the same string",
             KV,
             {"0 invoke append k=a s:ab", "0 ok append", "1 invoke append k=a s:c", "1 ok append",
              "2 invoke get k=a", "2 ok get k=a s:abc"},
             Verdict::valid},
        Case{"kv integer values are their decimal strings",
             KV,
             {"0 invoke append k=a 1", "0 ok append", "0 invoke append k=a 2", "0 ok append",
              "2 invoke get k=a", "2 ok get k=a s:12"},
             Verdict::valid},
        Case{"kv get of a missing key is empty",
             KV,
             {"2 invoke get k=a", "2 ok get k=a s:"},
             Verdict::valid},
        Case{"log reads a prefix in order",
             LOG,
             {"0 invoke append 1", "0 ok append", "0 invoke append 2", "0 ok append",
              "1 invoke read", "1 ok read [1,2]"},
             Verdict::valid},
        Case{"log read out of order",
             LOG,
             {"0 invoke append 1", "0 ok append", "0 invoke append 2", "0 ok append",
              "1 invoke read", "1 ok read [2,1]"},
             Verdict::invalid},
        Case{"log lost append",
             LOG,
             {"0 invoke append 1", "0 ok append", "0 invoke append 2", "0 ok append",
              "1 invoke read", "1 ok read [1]"},
             Verdict::invalid}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch)))
          ch = '_';
      }
      return n;
    });

TEST(LinearizabilityResult, ExplainsTheFailure) {
  const History h = parse({"0 invoke write 1", "0 ok write", "0 invoke write 2", "0 ok write",
                           "1 invoke read", "1 ok read 1"});
  auto r = check_linearizable(h, ModelKind::cas_register);
  ASSERT_EQ(r.verdict, Verdict::invalid);
  ASSERT_TRUE(r.failing);
  EXPECT_EQ(r.failing->longest_prefix, (std::vector<std::size_t>{0, 1}));
  ASSERT_TRUE(r.failing->stuck_op);
  EXPECT_EQ(*r.failing->stuck_op, 2u);  // the read of 1 after 2 was written
  EXPECT_NE(r.summary().find("process 1 read 1 (line 6)"), std::string::npos) << r.summary();
  auto j = r.to_json(h);
  EXPECT_EQ(j["failing_partition"]["cannot_place"]["line"], 6);
}

TEST(LinearizabilityResult, SmallestFailingKeyIsReported) {
  const History h = parse({"0 invoke put k=big s:x", "0 ok put", "0 invoke put k=big s:y",
                           "0 ok put", "1 invoke get k=big", "1 ok get k=big s:x",
                           "2 invoke get k=small", "2 ok get k=small s:z"});
  auto r = check_linearizable(h, ModelKind::kv);
  ASSERT_EQ(r.verdict, Verdict::invalid);
  EXPECT_EQ(r.failing->key, "small");
}

TEST(LinearizabilityResult, PassedDeadlineIsUnknown) {
  const History h = parse({"0 invoke write 1", "0 ok write"});
  LinearizabilityOptions o;
  o.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  EXPECT_EQ(check_linearizable(h, ModelKind::cas_register, o).verdict, Verdict::unknown);
}

}  // namespace
}  // namespace faultline::checker
