/* This thread's number and its team's size inside an OpenMP parallel region: 0 and 1 when built
 * without OpenMP, where the region is the calling thread alone. */
#ifndef ONLSTM_OPENMP_TEAM_H
#define ONLSTM_OPENMP_TEAM_H
#ifdef _OPENMP
#include <omp.h>
#define ONLSTM_TEAM(thread, team) long thread = omp_get_thread_num(), team = omp_get_num_threads()
#else
#define ONLSTM_TEAM(thread, team) long thread = 0, team = 1
#endif
#endif
