/* A QEMU TCG plugin (user mode) that counts the guest instructions a program executes.
 *
 *   cc -shared -fPIC -O2 -o insn_count.so tools/insn_count.c
 *   qemu-aarch64 -plugin ./insn_count.so[,out=FILE][,blocks=FILE] PROGRAM ...
 *
 * At exit it writes "instructions N" to FILE (or QEMU's plugin log, stderr). With blocks=FILE it also writes one
 * line per translated block, "vaddr n_insns executions", so that a script can attribute the count to the mapped
 * files and symbols of the guest (tools/arm_cost.py does). Counting is an inline add per executed block, so a
 * single-threaded guest is counted exactly; with several guest threads the adds may race.
 *
 * Written against QEMU's documented plugin API, version 1 (QEMU 4.2 to 8.x, where the per-block inline add
 * below exists); only the handful of declarations it uses are repeated here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_outs(const char *string);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

/* one record per translated block, in chunks that never move (the inline adds point into them) */
typedef struct { uint64_t vaddr, n_insns, executions; } Block;
enum { CHUNK = 1 << 16 };
typedef struct Chunk { struct Chunk *next; size_t used; Block b[CHUNK]; } Chunk;

static uint64_t instructions;
static Chunk *chunks;
static char *out_path, *blocks_path;

static void translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    uint64_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &instructions, n);
    if (!blocks_path) return;
    if (!chunks || chunks->used == CHUNK) {
        Chunk *c = calloc(1, sizeof *c);
        if (!c) return;
        c->next = chunks;
        chunks = c;
    }
    Block *b = &chunks->b[chunks->used++];
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = n;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->executions, 1);
}

static void finished(qemu_plugin_id_t id, void *userdata) {
    char line[64];
    snprintf(line, sizeof line, "instructions %llu\n", (unsigned long long)instructions);
    FILE *f = out_path ? fopen(out_path, "w") : NULL;
    if (f) { fputs(line, f); fclose(f); } else qemu_plugin_outs(line);
    if (blocks_path && (f = fopen(blocks_path, "w"))) {
        for (Chunk *c = chunks; c; c = c->next)
            for (size_t i = 0; i < c->used; i++)
                if (c->b[i].executions)
                    fprintf(f, "%llx %llu %llu\n", (unsigned long long)c->b[i].vaddr,
                            (unsigned long long)c->b[i].n_insns, (unsigned long long)c->b[i].executions);
        fclose(f);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "out=", 4)) out_path = strdup(argv[i] + 4);
        else if (!strncmp(argv[i], "blocks=", 7)) blocks_path = strdup(argv[i] + 7);
        else { fprintf(stderr, "insn_count: unknown argument %s (out=FILE, blocks=FILE)\n", argv[i]); return -1; }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translated);
    qemu_plugin_register_atexit_cb(id, finished, NULL);
    return 0;
}
