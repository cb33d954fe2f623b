# Negative binomial GLMMs with theta estimated, as lme4's glmer.nb (issue 13, item 2):
#   Rscript tests/reference/R/negbin_cases.R tests/reference/local
# negbin_data.csv: simulated once with numpy (seed 21, theta 2.5). R 4.x, lme4, MASS.
suppressPackageStartupMessages({library(lme4); library(MASS); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
sim <- read.csv(file.path(out, "negbin_data.csv"))
cases <- list(
  list(name = "ticks_nb", data = "grouseticks", d = grouseticks,
       formula = TICKS ~ YEAR + cHEIGHT + (1 | BROOD)),
  list(name = "simulated_nb", data = "negbin_data.csv", d = sim, formula = y ~ x + (1 | g))
)
res <- list()
for (case in cases) {
  m <- glmer.nb(case$formula, data = case$d)
  res[[case$name]] <- list(
    data = case$data,
    formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    fixef = as.list(fixef(m)),                                     # fixef(m)
    std_error = as.numeric(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
    theta = as.numeric(getME(m, "theta")),                         # getME(m, "theta")
    nb_theta = as.numeric(getME(m, "glmer.nb.theta")),             # getME(m, "glmer.nb.theta")
    logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"),    # logLik(m)
    fitted = as.numeric(fitted(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     MASS = as.character(packageVersion("MASS")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "negbin.json"))
