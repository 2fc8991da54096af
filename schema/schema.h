/* SPDX-License-Identifier: MIT */
/* The store's migrations, schema/NNNN-*.sql in order; user_version = applied count. */
#pragma once

extern const char *const schema_migrations[];
extern const unsigned schema_version;
