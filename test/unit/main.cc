// SPDX-License-Identifier: GPL-2.0-or-later
// Catch2 2.13 runner shared by every unit test program. The "tap-cases"
// reporter prints one TAP line per test case (Catch2's own TAP reporter
// prints one per assertion), so meson counts test cases.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string>

namespace {

// Text for a TAP comment: every line of it starts with '#', so that a
// message with newlines (a multi-line reply, say) cannot break the stream.
std::string commented(const std::string& text)
{
    std::string out;
    for (char c : text) {
        out += c;
        if (c == '\n')
            out += "#     ";
    }
    return out;
}

class TapCaseReporter : public Catch::StreamingReporterBase<TapCaseReporter> {
public:
    using StreamingReporterBase::StreamingReporterBase;

    static std::string getDescription() { return "TAP, one line per test case"; }

    void noMatchingTestCases(std::string const&) override {}

    void testRunStarting(Catch::TestRunInfo const& info) override
    {
        StreamingReporterBase::testRunStarting(info);
    }

    void assertionStarting(Catch::AssertionInfo const&) override {}

    bool assertionEnded(Catch::AssertionStats const& stats) override
    {
        const Catch::AssertionResult& r = stats.assertionResult;
        if (r.isOk())
            return true;
        failures_ += std::string("# ") + r.getSourceInfo().file + ":" + std::to_string(r.getSourceInfo().line) +
                     ": " + commented(r.getExpressionInMacro()) + "\n";
        if (r.hasExpandedExpression())
            failures_ += "#   with expansion: " + commented(r.getExpandedExpression()) + "\n";
        if (r.hasMessage())
            failures_ += "#   " + commented(r.getMessage()) + "\n";
        for (const auto& m : stats.infoMessages)
            failures_ += "#   info: " + commented(m.message) + "\n";
        return true;
    }

    void testCaseEnded(Catch::TestCaseStats const& stats) override
    {
        ++count_;
        bool ok = stats.totals.assertions.failed == 0;
        stream << (ok ? "ok " : "not ok ") << count_ << " - " << stats.testInfo.name << "\n"
               << failures_;
        failures_.clear();
        StreamingReporterBase::testCaseEnded(stats);
    }

    void testRunEnded(Catch::TestRunStats const& stats) override
    {
        stream << "1.." << count_ << "\n";
        StreamingReporterBase::testRunEnded(stats);
    }

private:
    int count_ = 0;
    std::string failures_;
};

} // namespace

CATCH_REGISTER_REPORTER("tap-cases", TapCaseReporter)

int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
