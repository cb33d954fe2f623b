# Exact fits with a vector-valued term after the first grouping (the densely eliminated
# part of the blocked Cholesky), as lme4 fits them:
#   Rscript tests/reference/R/dense_vector_cases.R tests/reference/local
# The data: the first 3000 rows of lme4's InstEval (tests slice the bundled copy).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
d <- InstEval[1:3000, ]
cases <- list(
  scalar_then_vector_REML = list(f = y ~ service + (1 | s) + (service | dept), REML = TRUE),
  scalar_then_vector_ML = list(f = y ~ service + (1 | s) + (service | dept), REML = FALSE),
  vector_then_vector_REML = list(f = y ~ service + (service | d) + (service | dept), REML = TRUE)
)
res <- list()
for (nm in names(cases)) {
  m <- lmer(cases[[nm]]$f, d, REML = cases[[nm]]$REML)
  vc <- as.data.frame(VarCorr(m))
  res[[nm]] <- list(
    formula = paste(deparse(cases[[nm]]$f), collapse = " "), REML = cases[[nm]]$REML, rows = 3000,
    fixef = as.list(fixef(m)),                                   # fixef(m)
    std_error = unname(sqrt(diag(as.matrix(vcov(m))))),          # sqrt(diag(vcov(m)))
    sdcor = vc$sdcor,                                            # as.data.frame(VarCorr(m))$sdcor
    logLik = as.numeric(logLik(m)),                              # logLik(m) (REML criterion for REML fits)
    singular = isSingular(m)
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "dense_vector.json"))
