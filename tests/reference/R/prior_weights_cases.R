# Prior weights in GLMMs, as glmer(weights = w) (issue 13, item 1):
#   Rscript tests/reference/R/prior_weights_cases.R tests/reference/local
# prior_weights_data.csv: simulated once with numpy (seed 5).
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
d <- read.csv(file.path(out, "prior_weights_data.csv"))
cases <- list(
  list(name = "poisson_weights", formula = y ~ x + (1 | g), family = poisson()),
  list(name = "gamma_weights", formula = yg ~ x + (1 | g), family = Gamma("log"))
)
res <- list()
for (case in cases) {
  m <- glmer(case$formula, data = d, family = case$family, weights = w)
  res[[case$name]] <- list(
    formula = paste(deparse(case$formula), collapse = " "),
    family = case$family$family, link = case$family$link,
    fixef = as.list(fixef(m)),
    std_error = as.numeric(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
    theta = as.numeric(getME(m, "theta")), sigma = sigma(m),
    logLik = as.numeric(logLik(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "prior_weights.json"))
