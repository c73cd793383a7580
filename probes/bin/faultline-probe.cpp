// faultline-probe: reachability and storage prober and health manager (ARCHITECTURE.md §4).
#include "faultline/probes/probe_options.h"

int main(int argc, char** argv) {
  return faultline::probes::probe_main(argc, argv);
}
