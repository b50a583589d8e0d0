/* SPDX-License-Identifier: Apache-2.0 */
/* Every benchmark case, in the order nsa_bench prints them. */
BENCH_CASE(bench_stream_ceiling)
BENCH_CASE(bench_nsa_compress)
BENCH_CASE(bench_ifa)
BENCH_CASE(bench_select_attention)
BENCH_CASE(bench_flex)
BENCH_CASE(bench_select_scaling)
