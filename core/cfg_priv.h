#pragma once
/* cfg_priv.h - the key tables that drive the configuration loader (STYLE rule 19).
 *
 * Private to core and to tests/core/test_cfg.c. The loader reads one way,
 * top down: cfg_load.c walks the YAML; cfg_keys.c holds the tables, their
 * checks and the cross-key rules; dest_cfg.c reads route destinations and
 * listen mappings; cfg.c, beneath them all, writes errors, keeps the seen
 * keys and reads addresses and CIDRs. Each section
 * is one table of keys: name, kind, where the value lives, default, range and
 * a documentation line; the same table renders packaging/CONFIG.md. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "cfg.h"

enum cfg_kind {
	CFG_K_SECTION,	/* nested mapping described by sub */
	CFG_K_UINT,	/* unsigned in min..max, default def */
	CFG_K_BOOL,	/* true/false/yes/no, default def */
	CFG_K_ENUM,	/* one of names[] stored as an int-sized enum, default index def */
	CFG_K_STR,	/* char[size], validated by check */
	CFG_K_PATH,	/* char[size], relative paths resolved against the config's folder */
	CFG_K_STRLIST,	/* char[max][size] plus unsigned count at count_off, min..max items */
	CFG_K_ADDR,	/* struct cfg_addr; bool set at flag_off when CFG_F_HAS */
	CFG_K_ADDRLIST, /* struct cfg_addr[max] plus count */
	CFG_K_CIDRLIST, /* struct cfg_cidr[max] plus count */
	CFG_K_ENUMLIST, /* int-sized enum[max] plus count, words from names[], no duplicates */
	CFG_K_RULES,	/* the rules list: heap array of struct cfg_rule */
	CFG_K_DESTSET,	/* struct cfg_destset: one destination or a list (core/dest_cfg.c) */
};

enum cfg_key_flag {
	CFG_F_REQUIRED = 1u << 0, /* the key must be present */
	CFG_F_SCHEME = 1u << 1,	  /* address written as udp://host:port */
	CFG_F_HAS = 1u << 2,	  /* ADDR: set the bool at flag_off when present */
	CFG_F_LOWER = 1u << 3,	  /* STRLIST: lowercase each item */
	CFG_F_UNIQUE = 1u << 4,	  /* lists: reject duplicate items */
};

struct cfg_ctx;

/* A check gets the scalar copied into its destination (it may normalise it in
 * place) and returns NULL when it is fine, else a short reason. */
typedef const char *(*cfg_check_fn)(char *value);

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off;		       /* field, relative to the section's base object */
	size_t size;		       /* STR/PATH/STRLIST: bytes per string */
	size_t aux_off;		       /* lists: unsigned count; ADDR with CFG_F_HAS: bool flag */
	unsigned min;		       /* UINT: lowest value; lists: fewest items */
	unsigned max;		       /* UINT: highest value; lists: capacity */
	unsigned def;		       /* UINT/BOOL/ENUM default */
	unsigned flags;		       /* enum cfg_key_flag */
	const char *const *names;      /* ENUM/ENUMLIST words, NULL-terminated */
	const struct cfg_section *sub; /* SECTION and RULES (one rule's keys) */
	cfg_check_fn check;	       /* STR/STRLIST */
	const char *doc_default;       /* shown when there is no numeric default */
	const char *doc_type;	       /* shown instead of the kind's generic type */
	const char *doc;	       /* one-line meaning for CONFIG.md */
};

struct cfg_section {
	const char *name; /* dotted prefix: "" for the root, "auth", "rules[]" */
	const struct cfg_key *keys;
	size_t n_keys;
};

#define CFG_SECTION_MAX_KEYS 24
#define CFG_SEEN_MAX 64

/* Loader state shared by the loader files. */
struct cfg_ctx {
	const char *file;
	char dir[4096]; /* config's folder, "" when the path has no slash */
	yaml_document_t doc;
	char *err;
	size_t errlen;
	struct cfg *c;
	unsigned root_line;
	unsigned n_seen; /* dotted names seen so far, with their lines */
	struct {
		char name[48];
		unsigned line;
	} seen[CFG_SEEN_MAX];
};

/* ---------------------------------------------------------------- cfg.c (the bottom) */

/* cfg_fail - write "file:line: message" into the error buffer; returns -EINVAL. */
int cfg_fail(struct cfg_ctx *x, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* cfg_seen_line - line where dotted key @name was written, 0 when absent. */
unsigned cfg_seen_line(const struct cfg_ctx *x, const char *name);
/* cfg_seen_add - remember section key @name at @line (rule keys and names
 * that do not fit are not kept). */
void cfg_seen_add(struct cfg_ctx *x, const char *name, unsigned line);
/* cfg_digits_parse - whole string of 1..10 decimal digits, value <= @max. */
bool cfg_digits_parse(const char *s, unsigned max, unsigned *out);
/* cfg_addr_explain / cfg_cidr_explain - as cfg_addr_parse / cfg_cidr_parse,
 * but return NULL on success or a short reason for the error message. */
const char *cfg_addr_explain(const char *s, bool with_scheme, struct cfg_addr *out);
const char *cfg_cidr_explain(const char *s, struct cfg_cidr *out);

static inline char cfg_ascii_lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* ---------------------------------------------------------------- cfg_keys.c (the tables) */

extern const struct cfg_section cfg_root_section;
/* cfg_finish - defaults that depend on other keys and cross-key checks. */
int cfg_finish(struct cfg_ctx *x);
/* cfg_doc_write - the key reference as a Markdown table (packaging/CONFIG.md). */
void cfg_doc_write(FILE *out);

/* ---------------------------------------------------------------- dest_cfg.c */

/* cfg_listen_mapping - a listen item written {url: URL, advertise: HOST[:PORT]}:
 * stores advertise for item @i and points *@url at the url node. */
int cfg_listen_mapping(struct cfg_ctx *x, const yaml_node_t *n, const char *name, unsigned i,
		       const yaml_node_t **url);
/* cfg_destset_parse - a route's destinations (URL, {uri, weight} or a list of
 * them) into @set; errors name @name and the line. */
int cfg_destset_parse(struct cfg_ctx *x, const yaml_node_t *n, const char *name,
		      struct cfg_destset *set);
