// Cluster definitions (cluster_definition.h): the shipped ones parse, placeholders expand, and a
// bad file names its file, line and problem.
#include "faultline/chaos/cluster_definition.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace faultline::chaos {
namespace {

std::filesystem::path source_dir() {
  if (const char* s = std::getenv("FAULTLINE_SOURCE_DIR"))
    return s;
  return FAULTLINE_DEFAULT_SOURCE_DIR;
}

TEST(ClusterDefinition, TheShippedDefinitionsParse) {
  for (const char* name : {"mini-cluster", "kafka-kraft"}) {
    DefinitionError error;
    auto d = load_cluster_definition(
        source_dir() / "chaos/definitions" / (std::string(name) + ".toml"), error);
    ASSERT_TRUE(d) << error.str();
    EXPECT_EQ(d->name, name);
    EXPECT_FALSE(d->broker.command.empty());
    EXPECT_FALSE(d->create_topic.empty());
  }
  DefinitionError error;
  auto mini = load_cluster_definition(source_dir() / "chaos/definitions/mini-cluster.toml", error);
  ASSERT_TRUE(mini);
  EXPECT_EQ(mini->kafka_port, 9094);
  ASSERT_TRUE(mini->controller);
  EXPECT_EQ(mini->controller->ready_port, 9090);
  EXPECT_EQ(mini->ready_timeout, std::chrono::seconds(20));
}

TEST(ClusterDefinition, PlaceholdersExpandInsideArgumentsAndUnknownOnesStay) {
  std::vector<std::string> args = {"{bin}/broker", "--listen", "{ext_addr}:9092", "node.id={id}",
                                   "{id}{id}",     "plain",    "{not_given}"};
  auto out = expand(args, {{"bin", "/opt/f"}, {"ext_addr", "198.18.0.2"}, {"id", "3"}});
  EXPECT_EQ(out, (std::vector<std::string>{"/opt/f/broker", "--listen", "198.18.0.2:9092",
                                           "node.id=3", "33", "plain", "{not_given}"}));
}

TEST(ClusterDefinition, BadFilesNameTheLineAndTheProblem) {
  struct Case {
    const char* text;
    int line;
    const char* why;
  };
  const std::vector<Case> cases = {
      {"name = \"x\"\n[topic]\ncreate = [\"t\"]\n", 0, "[broker] is missing"},
      {"[broker]\ncommand = [\"b\"]\n", 0, "[topic] is missing"},
      {"[broker]\ncommand = [\"b\", \"{nope}\"]\n[topic]\ncreate = [\"t\"]\n", 2,
       "unknown placeholder {nope}"},
      {"[broker]\ncommand = [\"b\", \"{topic}\"]\n[topic]\ncreate = [\"t\"]\n", 2,
       "unknown placeholder {topic}"},
      {"[broker]\ncommand = []\n[topic]\ncreate = [\"t\"]\n", 2, "non-empty list"},
      {"[broker]\ncommand = [\"b\", 3]\n[topic]\ncreate = [\"t\"]\n", 2, "must be a string"},
      {"[broker]\ncommand = [\"b\"]\nready_port = 70000\n[topic]\ncreate = [\"t\"]\n", 3,
       "port 1..65535"},
      {"[broker]\ncommand = [\"b\"]\nflavour = 1\n[topic]\ncreate = [\"t\"]\n", 3,
       "unknown key broker.flavour"},
      {"kafka_port = 0\n[broker]\ncommand = [\"b\"]\n[topic]\ncreate = [\"t\"]\n", 1, "kafka_port"},
      {"[broker]\ncommand = [\"b {id\"]\n[topic]\ncreate = [\"t\"]\n", 2, "unclosed"},
      {"[broker]\ncommand = [\"b\"]\n[topic]\ncreate = \"t\"\n", 4, "non-empty list"},
      {"[broker\n", 1, ""},
  };
  for (const auto& c : cases) {
    DefinitionError error;
    EXPECT_FALSE(parse_cluster_definition(c.text, "def.toml", error)) << c.text;
    EXPECT_EQ(error.file, "def.toml");
    EXPECT_EQ(error.line, c.line) << c.text << " -> " << error.str();
    EXPECT_NE(error.why.find(c.why), std::string::npos) << c.text << " -> " << error.str();
  }
  DefinitionError missing;
  EXPECT_FALSE(load_cluster_definition("/nonexistent/def.toml", missing));
  EXPECT_NE(missing.str().find("/nonexistent/def.toml"), std::string::npos);
}

TEST(ClusterDefinition, TopicPlaceholdersAreAllowedInTheTopicCommandOnly) {
  DefinitionError error;
  auto d = parse_cluster_definition(
      "[broker]\ncommand = [\"b\", \"{id}\"]\n[topic]\ncreate = [\"t\", \"{topic}\", "
      "\"{partitions}\", \"{replication_factor}\", \"{kafka_bootstrap}\"]\n",
      "def.toml", error);
  ASSERT_TRUE(d) << error.str();
  auto args = expand(d->create_topic, {{"topic", "faultline"},
                                       {"partitions", "6"},
                                       {"replication_factor", "3"},
                                       {"kafka_bootstrap", "a:1"}});
  EXPECT_EQ(args, (std::vector<std::string>{"t", "faultline", "6", "3", "a:1"}));
}

}  // namespace
}  // namespace faultline::chaos
