/* SPDX-License-Identifier: Apache-2.0 */
/* Symbol visibility for libnsa's public API (the zstd / ggml pattern). */
#ifndef NSA_EXPORT_H
#define NSA_EXPORT_H

#if defined(_WIN32) && defined(NSA_BUILDING_DLL)
#define NSA_API __declspec(dllexport)
#elif defined(_WIN32) && defined(NSA_DLL_IMPORT)
#define NSA_API __declspec(dllimport)
#elif defined(__GNUC__) || defined(__clang__)
#define NSA_API __attribute__((visibility("default")))
#else
#define NSA_API
#endif

#endif /* NSA_EXPORT_H */
