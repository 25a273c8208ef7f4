#pragma once
/* rcu_tsan.h - RCU pointer publication that ThreadSanitizer can follow.
 * liburcu is not instrumented: TSan sees neither the ordering of
 * rcu_assign_pointer / rcu_dereference (a barrier and volatile accesses) nor
 * a grace period. Under TSan the pointer therefore uses the compiler's
 * atomics (the same orderings: release store, acquire load) and a grace
 * period is annotated on a token: readers release it after their last read,
 * the code that frees after synchronize_rcu / call_rcu acquires it. Without
 * TSan every macro is liburcu's own or nothing: no cost.
 * Include after <urcu.h> (the non-TSan forms are liburcu's macros). */

#if defined(__SANITIZE_THREAD__)
#define REFEREE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define REFEREE_TSAN 1
#endif
#endif

#ifdef REFEREE_TSAN
#include <sanitizer/tsan_interface.h>
#define rcu_ptr_publish(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#define rcu_ptr_load(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define rcu_ptr_xchg(p, v) __atomic_exchange_n(&(p), (v), __ATOMIC_ACQ_REL)
#define rcu_tsan_release(token) __tsan_release((void *)(token))
#define rcu_tsan_acquire(token) __tsan_acquire((void *)(token))
#else
#define rcu_ptr_publish(p, v) rcu_assign_pointer(p, v)
#define rcu_ptr_load(p) rcu_dereference(p)
#define rcu_ptr_xchg(p, v) rcu_xchg_pointer(&(p), (v))
#define rcu_tsan_release(token) ((void)0)
#define rcu_tsan_acquire(token) ((void)0)
#endif
