# Gaussian prior weights, as lmer(weights = w) (issue 13, item 1):
#   Rscript tests/reference/R/weights_cases.R tests/reference/local
# The weights are drawn here (set.seed(1), runif(0.2, 3), 3 decimals) and kept in the JSON.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
set.seed(1)
sleep <- sleepstudy; sleep$w <- round(runif(nrow(sleep), 0.2, 3), 3)
pen <- Penicillin; pen$w <- round(runif(nrow(pen), 0.2, 3), 3)
cases <- list(
  list(name = "sleep_weights_REML", d = sleep, data = "sleepstudy", REML = TRUE,
       formula = Reaction ~ Days + (Days | Subject)),
  list(name = "sleep_weights_ML", d = sleep, data = "sleepstudy", REML = FALSE,
       formula = Reaction ~ Days + (Days | Subject)),
  list(name = "penicillin_weights_ML", d = pen, data = "Penicillin", REML = FALSE,
       formula = diameter ~ 1 + (1 | plate) + (1 | sample))
)
res <- list()
for (case in cases) {
  m <- lmer(case$formula, data = case$d, weights = w, REML = case$REML)
  vc <- as.data.frame(VarCorr(m))
  res[[case$name]] <- list(
    data = case$data, REML = case$REML, weights = case$d$w,
    formula = paste(deparse(case$formula), collapse = " "),
    fixef = as.list(fixef(m)), std_error = as.numeric(sqrt(diag(as.matrix(vcov(m))))),
    sdcor = vc$sdcor, sigma = sigma(m),
    logLik = as.numeric(logLik(m)),                    # logLik(m): includes sum(log w) / 2
    fitted = as.numeric(fitted(m)), resid = as.numeric(residuals(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "weights.json"))
