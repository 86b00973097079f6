// SPDX-License-Identifier: GPL-2.0-or-later
// Runs a fuzz target over every file of its seed corpus, so the corpora are
// regression tests in every build (GCC included), and with the sanitizer
// build they run under ASan and UBSan. Prints TAP: one line per input file.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char* argv[])
{
    std::vector<std::filesystem::path> files;
    for (int i = 1; i < argc; ++i) {
        std::filesystem::path p(argv[i]);
        if (std::filesystem::is_directory(p)) {
            for (const auto& e : std::filesystem::directory_iterator(p))
                if (e.is_regular_file())
                    files.push_back(e.path());
        } else {
            files.push_back(p);
        }
    }
    std::printf("1..%zu\n", files.size());
    int n = 0;
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        // A crash or sanitizer report aborts the program: the test fails.
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
        std::printf("ok %d - %s\n", ++n, f.filename().c_str());
    }
    return 0;
}
