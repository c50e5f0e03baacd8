"""llem's benchmarks (`make bench`) and GPU experiment scripts."""
