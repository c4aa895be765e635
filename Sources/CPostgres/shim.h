// libpq, PostgreSQL's C client library (Debian: libpq-dev; pkg-config: libpq).
#include <libpq-fe.h>

/// PG_DIAG_SQLSTATE is a character macro, which Swift does not import as a field code.
static inline const char *dsch_pq_sqlstate(const PGresult *result) {
    return PQresultErrorField(result, PG_DIAG_SQLSTATE);
}
