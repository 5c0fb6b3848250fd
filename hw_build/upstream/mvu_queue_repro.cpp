// Drive mvu_queue_repro_top: input always valid (a counter mod 16 advanced on each handshake); output TREADY
// high for READY cycles, then low for STALL cycles, repeated. Each output must be SIMD * its input
// (SIMD: the third argument, as the model was built with -GSIMD=).
#include "Vmvu_queue_repro_top.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <deque>
int main(int argc, char** argv) {
  const int ready = argc > 1 ? std::atoi(argv[1]) : 20, stall = argc > 2 ? std::atoi(argv[2]) : 20;
  const unsigned simd = argc > 3 ? std::atoi(argv[3]) : 4;
  VerilatedContext ctx;
  Vmvu_queue_repro_top top{&ctx};
  top.ap_rst_n = 0; top.out_tready = 0; top.in_tdata = 0;
  for (int i = 0; i < 8; ++i) { top.ap_clk ^= 1; top.eval(); }
  top.ap_rst_n = 1;
  unsigned next = 0; long outputs = 0, wrong = 0;
  std::deque<unsigned> sent;
  for (int cycle = 0; cycle < 2000; ++cycle) {
    top.out_tready = (cycle % (ready + stall)) < ready;
    top.in_tdata = next & 15;
    top.ap_clk = 0; top.eval();
    if (top.in_tready) { sent.push_back(next & 15); ++next; }
    if (top.out_tvalid && top.out_tready) {
      const unsigned want = sent.empty() ? ~0u : simd * sent.front();
      if (!sent.empty()) sent.pop_front();
      if (top.out_tdata != want) ++wrong;
      ++outputs;
    }
    top.ap_clk = 1; top.eval();
  }
  std::printf("%ld outputs, %ld wrong, %zu inputs taken and not yet answered\n", outputs, wrong, sent.size());
  return wrong ? 1 : 0;
}
