/* Fused WaveNet sample loop on the CPU.
 *
 * One call generates a whole batch: for every sample, every layer's dilated conv (read from a ring
 * buffer of past inputs), gated unit, residual and skip 1x1 conv, the output head and inverse-CDF
 * sampling, with no interpreter or operator-dispatch overhead (PyTorch spends 2 to 10 us per small op,
 * about 13 ops per layer per sample). The arithmetic is the reference's (audio_vqvae/models/wavenet.py,
 * WaveNet.step and sample()); only the order of float additions inside the dot products differs.
 *
 * Work split. Threads form teams; each team owns some utterances (rows) of the batch, longest first,
 * and runs their sample loop on its own. Inside a team of n threads, each thread computes 1/n of the
 * gate channels of every layer and the matching 1/n of the rows of the residual/skip 1x1 conv (a
 * partial sum), so a layer costs one barrier: the partial residuals are added after it. At batch 1
 * this splits the 11.9 MB of weights streamed per sample (paper size) between the cores; at large
 * batches one-thread teams need no barrier at all and each core runs a register-blocked GEMM.
 *
 * Weights arrive packed by the Python side (fastgen/__init__.py) in column panels of NB = 2 * VW
 * floats, K rows each, so every weight stream is contiguous. Gate panels pair VW tanh channels with
 * the VW sigmoid channels they multiply. All channel counts are zero-padded to whole panels; the
 * padding stays exactly zero through the network. Weights are float32 or bfloat16 (widened to
 * float32 as they are loaded: half the bytes at batch 1, where bandwidth is the limit).
 *
 * A call may also continue a generation (a long utterance in chunks of bounded memory):
 * given the ring buffers and last classes a previous call handed back, and the clock t0 it reached,
 * it computes the samples that one uninterrupted call would have computed next.
 *
 * Portable C11 with GCC/Clang vector extensions (AVX-512, AVX2, SSE or NEON, as -march allows).
 */
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
#define VW 16 /* floats per vector register */
#define MR 12 /* rows of the GEMM tile: 2 x MR accumulators + 2 weight vectors fit 32 registers */
#elif defined(__AVX__)
#define VW 8
#define MR 6 /* 16 registers */
#else
#define VW 4
#define MR 4
#endif
#define NB (2 * VW) /* columns of a weight panel */

/* aligned(...) lowered so loads and stores may be unaligned */
typedef float vf __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(VW * 4), aligned(4)));
typedef uint32_t vu __attribute__((vector_size(VW * 4), aligned(4)));

/* Everything one call needs; mirrored by _Args in fastgen/__init__.py (keep the two in step). */
typedef struct {
    int64_t batch, n_frames, hop, n_layers, kernel;
    int64_t n_classes, Rp, Hp, Sp, Cp;  /* real class count; padded residual, half-gate, skip, class widths */
    int64_t n_threads, n_teams, bf16;
    const int64_t *dilations;           /* (L,) */
    const int64_t *order;               /* (B,) batch rows, longest first */
    const int64_t *n_samples;           /* (B,) samples to generate per row (<= n_frames * hop) */
    const void *w_conv;                 /* L x (Hp / VW) panels x (kernel * Rp) x NB */
    const void *w_out;                  /* L x ((Rp + Sp) / NB) panels x Hp x NB */
    const void *w_head1;                /* (Sp / NB) panels x Sp x NB */
    const void *w_head2;                /* (Cp / NB) panels x Sp x NB */
    const float *embedding;             /* (n_classes, Rp) */
    const float *b_res;                 /* (L, Rp) residual bias of each layer */
    const float *b_skip;                /* (Sp,) skip biases summed over layers */
    const float *b_head1, *b_head2;     /* (Sp,), (Cp,) */
    const float *cond;                  /* (B, N, L, 2 * Hp) conv bias + conditioning: tanh half, sigmoid half */
    const double *uniforms;             /* (B, T) or NULL for greedy decoding */
    double temperature;
    int64_t *out;                       /* (B, T), pre-filled with the start class */
    float *logits;                      /* (B, T, n_classes) or NULL: a debug copy of every step's logits */
    /* Resuming (chunks of one long generation): NULL rings and classes start afresh at t0 = 0. */
    int64_t t0;                         /* samples generated before this call: the ring buffers' clock */
    float *rings;                       /* (B, span_sum * Rp) every layer's ring buffer per row, in and out */
    int64_t *classes;                   /* (B,) last class of each row, in and out */
} fg_args;

int fastgen_vector_width(void) { return VW; }

/* ---- small vector helpers ------------------------------------------------------------------ */
static inline vf vload(const float *p) { return *(const vf *)p; }
static inline void vstore(float *p, vf v) { *(vf *)p = v; }
static inline vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
static inline vf vbroadcast(float x) { return (vf){0} + x; }

/* exp with Cephes' polynomial (about 1 ulp on the clamped range): the gates need 2 per channel. */
static inline vf vexp(vf x) {
    x = vselect(x > 88.3f, vbroadcast(88.3f), x);
    x = vselect(x < -87.3f, vbroadcast(-87.3f), x);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    vf n = (x * 1.44269504088896341f + shifter) - shifter;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23; /* 2^n */
    return p * (vf)e;
}

/* ---- GEMM on packed panels ----------------------------------------------------------------- */
/* Row k of a panel: its two weight vectors. A bfloat16 panel row is VW 32-bit words, word i holding
 * column i in its low half and column VW + i in its high half, so widening to float32 is one shift
 * and one mask (bfloat16 is the top half of a float32). */
static inline void load_row(const void *P, long k, const int bf16, vf *w0, vf *w1) {
    if (bf16) {
        vu u = *(const vu *)((const uint16_t *)P + k * NB);
        *w0 = (vf)(u << 16);
        *w1 = (vf)(u & 0xffff0000u);
    } else {
        *w0 = vload((const float *)P + k * NB);
        *w1 = vload((const float *)P + k * NB + VW);
    }
}

/* C[0:mr, 0:NB] (+)= A[0:mr, 0:K] @ P (K x NB). mr and bf16 are constants after inlining, so the
 * 2 * mr accumulators live in registers. */
static inline __attribute__((always_inline)) void tile(const int mr, int K, const float *A, long lda,
                                                        const void *P, const int bf16, float *C, long ldc,
                                                        int accumulate) {
    vf c0[MR], c1[MR];
    for (int r = 0; r < mr; r++) c0[r] = c1[r] = (vf){0};
    for (int k = 0; k < K; k++) {
        vf w0, w1;
        load_row(P, k, bf16, &w0, &w1);
        for (int r = 0; r < mr; r++) {
            float a = A[r * lda + k];
            c0[r] += a * w0;
            c1[r] += a * w1;
        }
    }
    for (int r = 0; r < mr; r++) {
        if (accumulate) {
            c0[r] += vload(C + r * ldc);
            c1[r] += vload(C + r * ldc + VW);
        }
        vstore(C + r * ldc, c0[r]);
        vstore(C + r * ldc + VW, c1[r]);
    }
}

/* One row (batch 1): four independent accumulator pairs over k hide the FMA latency. */
static inline __attribute__((always_inline)) void tile1(int K, const float *A, const void *P, const int bf16,
                                                         float *C, int accumulate) {
    vf s[8];
    for (int i = 0; i < 8; i++) s[i] = (vf){0};
    int k = 0;
    for (; k + 4 <= K; k += 4)
        for (int u = 0; u < 4; u++) {
            vf w0, w1;
            load_row(P, k + u, bf16, &w0, &w1);
            s[2 * u] += A[k + u] * w0;
            s[2 * u + 1] += A[k + u] * w1;
        }
    for (; k < K; k++) {
        vf w0, w1;
        load_row(P, k, bf16, &w0, &w1);
        s[0] += A[k] * w0;
        s[1] += A[k] * w1;
    }
    vf c0 = (s[0] + s[2]) + (s[4] + s[6]), c1 = (s[1] + s[3]) + (s[5] + s[7]);
    if (accumulate) {
        c0 += vload(C);
        c1 += vload(C + VW);
    }
    vstore(C, c0);
    vstore(C + VW, c1);
}

#define TILE_CASE(n, bf) case n: tile(n, K, A + (long)i * lda, lda, Pp, bf, Cp + (long)i * ldc, ldc, accumulate); break;
#if MR == 12
#define TILE_CASES(bf) TILE_CASE(2, bf) TILE_CASE(3, bf) TILE_CASE(4, bf) TILE_CASE(5, bf) TILE_CASE(6, bf) \
    TILE_CASE(7, bf) TILE_CASE(8, bf) TILE_CASE(9, bf) TILE_CASE(10, bf) TILE_CASE(11, bf) TILE_CASE(12, bf)
#elif MR == 6
#define TILE_CASES(bf) TILE_CASE(2, bf) TILE_CASE(3, bf) TILE_CASE(4, bf) TILE_CASE(5, bf) TILE_CASE(6, bf)
#else
#define TILE_CASES(bf) TILE_CASE(2, bf) TILE_CASE(3, bf) TILE_CASE(4, bf)
#endif

/* C[0:m, p * NB + j] (+)= sum_k A[0:m, k] * panel_p[k, j] for panels p = 0 .. n_panels - 1, panel p at
 * P + p * panel_stride elements. Rows go in blocks of at most MR, sized evenly (16 = 8 + 8, not 12 + 4). */
static void gemm(int m, int K, const float *A, long lda, const void *P, long panel_stride, int n_panels,
                 int bf16, float *C, long ldc, int accumulate) {
    const int n_blocks = (m + MR - 1) / MR;
    for (int p = 0; p < n_panels; p++) {
        const void *Pp = (const char *)P + (size_t)p * panel_stride * (bf16 ? 2 : 4);
        float *Cp = C + p * NB;
        for (int b = 0, i = 0; b < n_blocks; b++) {
            int mr = (m - i + (n_blocks - b) - 1) / (n_blocks - b);
            if (mr == 1) {
                if (bf16) tile1(K, A + (long)i * lda, Pp, 1, Cp + (long)i * ldc, accumulate);
                else tile1(K, A + (long)i * lda, Pp, 0, Cp + (long)i * ldc, accumulate);
            } else if (bf16) {
                switch (mr) { TILE_CASES(1) }
            } else {
                switch (mr) { TILE_CASES(0) }
            }
            i += mr;
        }
    }
}

/* ---- threads --------------------------------------------------------------------------------- */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spinning barrier: a team meets once per layer (about 30 times per sample, a few microseconds apart),
 * too often to sleep in the kernel as a pthread barrier does. After a while it yields, so that a core
 * shared with other processes is not burnt. */
typedef struct {
    atomic_int count;
    char pad[60];
    atomic_int generation;
    int n;
} barrier_t;

static void barrier_wait(barrier_t *b) {
    if (b->n == 1) return;
    int gen = atomic_load_explicit(&b->generation, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->generation, gen + 1, memory_order_release);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen; spins++) {
        if (spins < 20000) cpu_relax();
        else sched_yield();
    }
}

typedef struct {
    const fg_args *a;
    int n_rows, size;
    int64_t *rows; /* batch rows of this team, longest first */
    barrier_t barrier;
    float *rpart;  /* [2][size][n_rows * Rp] partial residuals, double-buffered by layer parity */
    float *skip;   /* [size][n_rows * Sp] each member's partial skip sum */
    float *h1;     /* [n_rows * Sp] first head conv */
    float *logits; /* [n_rows * Cp] */
} team_t;

typedef struct {
    team_t *team;
    int rank;
    float *x, *in, *h, *z, *s, *act, *ring; /* private: every member keeps a full copy of the state */
    int64_t *cls;
    atomic_int *start; /* 0: wait, 1: run, -1: give up (a thread could not be started) */
} member_t;

static void split_range(int n, int parts, int i, int *lo, int *hi) {
    *lo = (int)((long)n * i / parts);
    *hi = (int)((long)n * (i + 1) / parts);
}

/* ---- sampling, as sample() in wavenet.py ------------------------------------------------------ */
static int64_t sample_class(const float *logits, int C, double temperature, const double *u, float *probs) {
    if (temperature <= 0 || u == NULL) { /* greedy: the first maximum, like torch.argmax */
        int best = 0;
        for (int c = 1; c < C; c++)
            if (logits[c] > logits[best]) best = c;
        return best;
    }
    /* softmax(logits / T).cumsum() as torch computes it (a float32 division by T; the running sum in
     * double, rounded at each step), then the number of CDF entries below u. */
    const float temp = (float)temperature;
    float mx = logits[0] / temp;
    for (int c = 0; c < C; c++) {
        probs[c] = logits[c] / temp;
        if (probs[c] > mx) mx = probs[c];
    }
    float sum = 0;
    for (int c = 0; c < C; c++) {
        probs[c] = vexp(vbroadcast(probs[c] - mx))[0];
        sum += probs[c];
    }
    const float scale = 1.0f / sum;
    double cum = 0;
    for (int c = 0; c < C; c++) {
        cum += probs[c] * scale;
        if ((double)(float)cum >= *u) return c;
    }
    return C - 1;
}

/* Copy a member's ring buffers from a->rings (in = 1) or back to it (in = 0). A member keeps them
 * layer by layer ([L][n_rows][span_l][Rp]); a->rings row by row ([B][span_sum][Rp]), so that the next
 * call may deal the rows to other teams. */
static void copy_rings(member_t *me, int in) {
    const team_t *tm = me->team;
    const fg_args *a = tm->a;
    const long Rp = a->Rp, k = a->kernel;
    long span_sum = 0, offset = 0;
    for (int l = 0; l < a->n_layers; l++) span_sum += (k - 1) * a->dilations[l];
    float *ring = me->ring;
    for (int l = 0; l < a->n_layers; l++) {
        const long span = (k - 1) * a->dilations[l];
        for (int r = 0; r < tm->n_rows; r++) {
            float *mine = ring + (long)r * span * Rp;
            float *theirs = a->rings + (tm->rows[r] * span_sum + offset) * Rp;
            if (in) memcpy(mine, theirs, span * Rp * 4);
            else memcpy(theirs, mine, span * Rp * 4);
        }
        ring += (long)tm->n_rows * span * Rp;
        offset += span;
    }
}

/* ---- the sample loop of one team member ------------------------------------------------------ */
static void run_member(member_t *me) {
    team_t *tm = me->team;
    const fg_args *a = tm->a;
    const int rank = me->rank, size = tm->size, L = (int)a->n_layers, k = (int)a->kernel;
    const int Rp = (int)a->Rp, Hp = (int)a->Hp, Sp = (int)a->Sp, Cp = (int)a->Cp, C = (int)a->n_classes;
    const int Kc = k * Rp, hop = (int)a->hop, N = (int)a->n_frames, bf16 = (int)a->bf16;
    const long T = (long)N * hop, esize = bf16 ? 2 : 4;
    const int n_res = Rp / NB, n_skip = Sp / NB;
    const float sqrt_half = 0.70710678118654752f;
    /* this member's share: conv panels [g0, g1), i.e. gate channels [z0, z0 + nz), and head panels */
    int g0, g1, p10, p11, p20, p21;
    split_range(Hp / VW, size, rank, &g0, &g1);
    split_range(Sp / NB, size, rank, &p10, &p11);
    split_range(Cp / NB, size, rank, &p20, &p21);
    const int z0 = g0 * VW, nz = (g1 - g0) * VW;
    const size_t conv_layer = (size_t)(Hp / VW) * Kc * NB, out_layer = (size_t)(n_res + n_skip) * Hp * NB;
    float row_logits[Cp], probs[Cp];

    int m = tm->n_rows;
    const long t0 = (long)a->t0;
    for (int r = 0; r < m; r++) me->cls[r] = a->classes ? a->classes[tm->rows[r]] : C / 2; /* the start class */
    if (a->rings) copy_rings(me, 1);
    for (long t = 0; t < T; t++) {
        while (m > 0 && a->n_samples[tm->rows[m - 1]] <= t) m--; /* finished rows leave the batch */
        if (m == 0) break;
        const long frame = t / hop;
        for (int r = 0; r < m; r++) memcpy(me->x + (long)r * Rp, a->embedding + me->cls[r] * Rp, Rp * 4);
        float *ring = me->ring;
        for (int l = 0; l < L; l++) {
            const long d = a->dilations[l], span = (k - 1) * d;
            /* conv input [x(t - (k-1) d), ..., x(t - d), x(t)]; then x(t) replaces the oldest tap */
            for (int r = 0; r < m; r++) {
                float *buf = ring + (long)r * span * Rp, *in = me->in + (long)r * Kc;
                for (int j = 0; j < k - 1; j++)
                    memcpy(in + j * Rp, buf + ((t0 + t - (k - 1 - j) * d) % span + span) % span * Rp, Rp * 4);
                memcpy(in + (k - 1) * Rp, me->x + (long)r * Rp, Rp * 4);
                memcpy(buf + (t0 + t) % span * Rp, me->x + (long)r * Rp, Rp * 4);
            }
            ring += (long)tm->n_rows * span * Rp;
            /* gate: h = in @ W_conv (own panels), z = tanh(h_a + c_a) * sigmoid(h_b + c_b) */
            const char *wc = (const char *)a->w_conv + (l * conv_layer + (size_t)g0 * Kc * NB) * esize;
            gemm(m, Kc, me->in, Kc, wc, (long)Kc * NB, g1 - g0, bf16, me->h, 2 * Hp, 0);
            for (int r = 0; r < m; r++) {
                const float *c = a->cond + ((tm->rows[r] * N + frame) * L + l) * 2 * Hp;
                for (int p = g0; p < g1; p++) {
                    const float *h = me->h + (long)r * 2 * Hp + (p - g0) * NB;
                    vf ta = vload(h) + vload(c + p * VW), sg = vload(h + VW) + vload(c + Hp + p * VW);
                    vf tanh_a = 1.0f - 2.0f / (vexp(ta + ta) + 1.0f), sig_b = 1.0f / (vexp(-sg) + 1.0f);
                    vstore(me->z + (long)r * Hp + p * VW, tanh_a * sig_b);
                }
            }
            /* residual and skip 1x1 conv over own gate channels: partial sums */
            const char *wo = (const char *)a->w_out + (l * out_layer + (size_t)z0 * NB) * esize;
            float *rp = tm->rpart + ((size_t)(l & 1) * size + rank) * tm->n_rows * Rp;
            float *sk = tm->skip + (size_t)rank * tm->n_rows * Sp;
            gemm(m, nz, me->z + z0, Hp, wo, (long)Hp * NB, n_res, bf16, rp, Rp, 0);
            gemm(m, nz, me->z + z0, Hp, wo + (size_t)n_res * Hp * NB * esize, (long)Hp * NB, n_skip, bf16, sk, Sp,
                 l > 0);
            barrier_wait(&tm->barrier);
            /* every member adds up the partial residuals into its own copy of x */
            const float *br = a->b_res + (long)l * Rp;
            for (int r = 0; r < m; r++) {
                float *x = me->x + (long)r * Rp;
                for (int i = 0; i < Rp; i += VW) {
                    vf sum = vload(br + i);
                    for (int j = 0; j < size; j++)
                        sum += vload(tm->rpart + (((size_t)(l & 1) * size + j) * tm->n_rows + r) * Rp + i);
                    vstore(x + i, (vload(x + i) + sum) * sqrt_half);
                }
            }
        }
        /* head: relu, 1x1 conv, relu, 1x1 conv (panels split between members, one barrier each) */
        for (int r = 0; r < m; r++)
            for (int i = 0; i < Sp; i += VW) {
                vf sum = vload(a->b_skip + i);
                for (int j = 0; j < size; j++) sum += vload(tm->skip + ((size_t)j * tm->n_rows + r) * Sp + i);
                vstore(me->s + (long)r * Sp + i, vselect(sum > 0, sum, (vf){0}));
            }
        gemm(m, Sp, me->s, Sp, (const char *)a->w_head1 + (size_t)p10 * Sp * NB * esize, (long)Sp * NB, p11 - p10,
             bf16, tm->h1 + p10 * NB, Sp, 0);
        barrier_wait(&tm->barrier);
        for (int r = 0; r < m; r++)
            for (int i = 0; i < Sp; i += VW) {
                vf v = vload(tm->h1 + (long)r * Sp + i) + vload(a->b_head1 + i);
                vstore(me->act + (long)r * Sp + i, vselect(v > 0, v, (vf){0}));
            }
        gemm(m, Sp, me->act, Sp, (const char *)a->w_head2 + (size_t)p20 * Sp * NB * esize, (long)Sp * NB, p21 - p20,
             bf16, tm->logits + p20 * NB, Cp, 0);
        barrier_wait(&tm->barrier);
        /* every member samples (the same classes); the first one writes them out */
        for (int r = 0; r < m; r++) {
            const int64_t b = tm->rows[r];
            for (int c = 0; c < C; c++) row_logits[c] = tm->logits[(long)r * Cp + c] + a->b_head2[c];
            if (rank == 0 && a->logits) memcpy(a->logits + (b * T + t) * C, row_logits, C * 4);
            const double *u = a->uniforms ? a->uniforms + b * T + t : NULL;
            me->cls[r] = sample_class(row_logits, C, a->temperature, u, probs);
            if (rank == 0) a->out[b * T + t] = me->cls[r];
        }
    }
    if (rank == 0 && a->classes) { /* members hold the same state: the first one hands it on */
        for (int r = 0; r < tm->n_rows; r++) a->classes[tm->rows[r]] = me->cls[r];
        if (a->rings) copy_rings(me, 0);
    }
}

static void *thread_main(void *arg) {
    member_t *me = arg;
    int go;
    while ((go = atomic_load_explicit(me->start, memory_order_acquire)) == 0) sched_yield();
    if (go > 0) run_member(me);
    return NULL;
}

static void *alloc(size_t n_bytes, int *failed) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n_bytes ? n_bytes : 64)) {
        *failed = 1;
        return NULL;
    }
    memset(p, 0, n_bytes); /* zeros: the ring buffers start as the causal conv's left padding */
    return p;
}

/* Generate a->out. Returns 0, or -1 when memory or threads ran out (nothing generated). */
int fastgen_generate(const fg_args *a) {
    const int n_teams = (int)a->n_teams, n_threads = (int)a->n_threads, B = (int)a->batch;
    const int k = (int)a->kernel, Rp = (int)a->Rp, Hp = (int)a->Hp, Sp = (int)a->Sp, Cp = (int)a->Cp;
    if (n_teams < 1 || n_teams > B || n_threads < n_teams || Rp % NB || Sp % NB || Cp % NB || Hp % VW)
        return -2;
    long span_sum = 0;
    for (int l = 0; l < a->n_layers; l++) span_sum += (k - 1) * a->dilations[l];

    int failed = 0;
    team_t *teams = alloc(sizeof(team_t) * n_teams, &failed);
    member_t *members = alloc(sizeof(member_t) * n_threads, &failed);
    pthread_t *threads = alloc(sizeof(pthread_t) * n_threads, &failed);
    atomic_int start = 0;
    if (failed) goto done;
    /* rows dealt to teams longest first, in a snake (0 1 1 0 0 1 ...) so their workloads are even */
    for (int i = 0; i < n_teams; i++) {
        teams[i].a = a;
        teams[i].rows = alloc(sizeof(int64_t) * B, &failed);
        teams[i].size = n_threads / n_teams + (i < n_threads % n_teams);
        teams[i].barrier.n = teams[i].size;
    }
    if (failed) goto done;
    for (int i = 0; i < B; i++) {
        int lap = i / n_teams, j = i % n_teams, team = lap % 2 ? n_teams - 1 - j : j;
        teams[team].rows[teams[team].n_rows++] = a->order[i];
    }
    for (int i = 0, t = 0; i < n_teams; i++) {
        team_t *tm = &teams[i];
        const size_t n = tm->n_rows;
        tm->rpart = alloc(4 * 2 * tm->size * n * Rp, &failed);
        tm->skip = alloc(4 * tm->size * n * Sp, &failed);
        tm->h1 = alloc(4 * n * Sp, &failed);
        tm->logits = alloc(4 * n * Cp, &failed);
        for (int rank = 0; rank < tm->size; rank++, t++) {
            member_t *me = &members[t];
            me->team = tm;
            me->rank = rank;
            me->start = &start;
            me->x = alloc(4 * n * Rp, &failed);
            me->in = alloc(4 * n * k * Rp, &failed);
            me->h = alloc(4 * n * 2 * Hp, &failed);
            me->z = alloc(4 * n * Hp, &failed);
            me->s = alloc(4 * n * Sp, &failed);
            me->act = alloc(4 * n * Sp, &failed);
            me->ring = alloc(4 * n * span_sum * Rp, &failed);
            me->cls = alloc(8 * n, &failed);
        }
    }
    if (failed) goto done;
    /* member 0 runs on this thread; the others wait at the start line until all exist */
    int started = 1;
    for (; started < n_threads; started++)
        if (pthread_create(&threads[started], NULL, thread_main, &members[started])) break;
    atomic_store_explicit(&start, started == n_threads ? 1 : -1, memory_order_release);
    if (started == n_threads) run_member(&members[0]);
    else failed = 1;
    for (int i = 1; i < started; i++) pthread_join(threads[i], NULL);

done:
    for (int i = 0; members && i < n_threads; i++) {
        member_t *me = &members[i];
        free(me->x), free(me->in), free(me->h), free(me->z), free(me->s), free(me->act), free(me->ring);
        free(me->cls);
    }
    for (int i = 0; teams && i < n_teams; i++)
        free(teams[i].rows), free(teams[i].rpart), free(teams[i].skip), free(teams[i].h1), free(teams[i].logits);
    free(teams), free(members), free(threads);
    return failed ? -1 : 0;
}
