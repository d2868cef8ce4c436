#include "core/key_format.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>

using namespace keygate::core;

TEST(KeyFormat, GeneratedKeysHaveTheirPrefixLengthAndAValidChecksum) {
  for (auto type : {KeyType::publishable, KeyType::secret})
    for (auto env : {Environment::live, Environment::test}) {
      const std::string k = generate_key(type, env);
      EXPECT_EQ(k.size(), kKeyLength);
      EXPECT_EQ(k.substr(0, 8), std::string(type == KeyType::secret ? "sk_" : "pk_") +
                                    std::string(to_string(env)) + "_");
      auto shape = parse_key(k);
      ASSERT_TRUE(shape);
      EXPECT_EQ(shape->type, type);
      EXPECT_EQ(shape->environment, env);
    }
}

TEST(KeyFormat, ABadChecksumOrShapeIsRejected) {
  std::string k = generate_key(KeyType::secret, Environment::live);
  std::string typo = k;
  typo[20] = typo[20] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(parse_key(typo));
  EXPECT_FALSE(parse_key(k.substr(0, k.size() - 1)));
  EXPECT_FALSE(parse_key(k + "x"));
  EXPECT_FALSE(parse_key("xk" + k.substr(2)));
  EXPECT_FALSE(parse_key("sk_prod_" + k.substr(8)));
  std::string bad_char = k;
  bad_char[10] = '-';
  EXPECT_FALSE(parse_key(bad_char));
  EXPECT_FALSE(parse_key(""));
}

TEST(KeyFormat, KeysAreRandom) {
  std::set<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.insert(generate_key(KeyType::secret, Environment::live));
  EXPECT_EQ(keys.size(), 1000u);
}

// Key values come from a buffer of the CSPRNG's output per thread, refilled every 64 keys:
// across refills and threads no value repeats.
TEST(KeyFormat, KeysFromManyThreadsAndRefillsNeverRepeat) {
  std::vector<std::string> a, b;
  std::thread t1([&] {
    for (int i = 0; i < 2000; ++i) a.push_back(generate_key(KeyType::secret, Environment::live));
  });
  std::thread t2([&] {
    for (int i = 0; i < 2000; ++i) b.push_back(generate_key(KeyType::secret, Environment::live));
  });
  t1.join();
  t2.join();
  std::set<std::string> keys(a.begin(), a.end());
  keys.insert(b.begin(), b.end());
  EXPECT_EQ(keys.size(), 4000u);
}

// A child of fork() inherits the buffer: it must not hand out the key its parent will.
TEST(KeyFormat, AForkedChildNeverRepeatsItsParentsNextKey) {
  generate_key(KeyType::secret, Environment::live);  // the buffer holds the next keys now
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string k = generate_key(KeyType::secret, Environment::live);
    const bool ok = ::write(fds[1], k.data(), k.size()) == static_cast<ssize_t>(k.size());
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  const std::string mine = generate_key(KeyType::secret, Environment::live);
  std::string theirs(kKeyLength, '\0');
  size_t got = 0;
  while (got < theirs.size()) {
    const ssize_t n = ::read(fds[0], theirs.data() + got, theirs.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(got, kKeyLength);
  EXPECT_TRUE(parse_key(theirs));
  EXPECT_NE(theirs, mine);
}

TEST(KeyFormat, HashIsSha256OfTheValue) {
  const KeyHash h = hash_key("abc");
  EXPECT_EQ(h[0], 0xba);
  EXPECT_EQ(h[1], 0x78);
  EXPECT_EQ(h[31], 0xad);
}

TEST(KeyFormat, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
}

TEST(KeyFormat, SecretDisplayKeyShowsOnlyTheLastFour) {
  const std::string k = generate_key(KeyType::secret, Environment::test);
  EXPECT_EQ(display_key(KeyType::secret, Environment::test, k),
            "sk_test_\u2026" + k.substr(k.size() - 4));
  const std::string p = generate_key(KeyType::publishable, Environment::live);
  EXPECT_EQ(display_key(KeyType::publishable, Environment::live, p), p);
}
