# R's meaning and R's names for R syntax in formulas (issue 13, item 5):
#   Rscript tests/reference/R/formula_cases.R tests/reference/local
# Each case: fixef(m) with its names, logLik(m); R 4.x, lme4 from Debian's r-cran-* packages.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
cases <- list(
  list(name = "factor", data = "sleepstudy", formula = Reaction ~ factor(Days) + (1 | Subject)),
  list(name = "power", data = "sleepstudy", formula = Reaction ~ Days + I(Days^2) + (1 | Subject)),
  list(name = "crossing", data = "sleepstudy",
       formula = Reaction ~ (Days + I(Days^2))^2 + (1 | Subject)),
  list(name = "poly", data = "sleepstudy", formula = Reaction ~ poly(Days, 2) + (1 | Subject)),
  list(name = "poly_raw", data = "sleepstudy",
       formula = Reaction ~ poly(Days, 3, raw = TRUE) + (1 | Subject)),
  list(name = "scale", data = "sleepstudy",
       formula = Reaction ~ scale(Days, center = FALSE) + scale(Days^2) + (1 | Subject)),
  list(name = "log", data = "sleepstudy",
       formula = log(Reaction) ~ log(Days + 1) + sqrt(Days) + exp(-Days) + (1 | Subject)),
  list(name = "as_numeric", data = "Pastes",
       formula = strength ~ as.numeric(cask) + (1 | batch)),
  list(name = "slope_power", data = "sleepstudy",
       formula = Reaction ~ Days + (1 + I(Days^2) | Subject))
)
res <- list()
for (case in cases) {
  d <- get(case$data)
  m <- lmer(case$formula, data = d, REML = FALSE,
            control = lmerControl(check.conv.singular = "ignore"))
  vc <- as.data.frame(VarCorr(m))
  res[[case$name]] <- list(
    data = case$data,
    formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    fixef = as.list(fixef(m)),          # fixef(lmer(formula, data, REML = FALSE))
    sdcor = vc$sdcor,                   # as.data.frame(VarCorr(m))$sdcor
    ranef_terms = colnames(ranef(m)[[1]]),
    logLik = as.numeric(logLik(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "formula_r_syntax.json"))
