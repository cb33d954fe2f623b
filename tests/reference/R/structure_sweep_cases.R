# Exact fits over model structures the earlier references did not reach: a random slope in
# a later term, several vector terms, factors inside ||, singular optima on an edge.
#   Rscript tests/reference/R/structure_sweep_cases.R tests/reference/local
# Data: the first 4000 rows of lme4's InstEval, x = as.numeric(studage) (1-4),
# lec = as.numeric(lectage) (1-6). lme4 1.1-31.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
d <- InstEval[1:4000, ]
d$x <- as.numeric(d$studage)
d$lec <- as.numeric(d$lectage)
cases <- list(
  a = y ~ service + (service | d) + (1 | dept),
  b = y ~ x + (1 | s) + (x | d) + (1 | dept),
  c = y ~ service + (1 | s) + (service || dept),
  d = y ~ x + (x | dept) + (1 | s),
  e = y ~ service + x + (1 | s) + (x + service | dept),
  f = y ~ lec + (lec | d) + (lec | dept),
  g = y ~ service + (1 | dept/d)
)
res <- list()
for (nm in names(cases)) for (reml in c(TRUE, FALSE)) {
  m <- suppressMessages(suppressWarnings(lmer(cases[[nm]], d, REML = reml)))
  res[[paste0(nm, if (reml) "_REML" else "_ML")]] <- list(
    formula = paste(deparse(cases[[nm]]), collapse = ""), REML = reml, rows = 4000,
    logLik = as.numeric(logLik(m)),                 # logLik(m)
    fixef = unname(fixef(m)),                       # fixef(m)
    std_error = unname(sqrt(diag(as.matrix(vcov(m))))),
    theta_names = names(getME(m, "theta")),         # names(getME(m, "theta"))
    singular = isSingular(m))
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "structure_sweep.json"))
