# GLMMs with every link lme4 offers for binomial and Poisson, and a Poisson model with an
# observation-level random effect (issue 13, items 3 and 6):
#   Rscript tests/reference/R/glmm_link_cases.R tests/reference/local
# Each case: fixef(m), sqrt(diag(vcov(m, use.hessian = FALSE))), getME(m, "theta"),
# logLik(m), fitted(m). R 4.x, lme4 from Debian's r-cran-* packages.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
cbpp_f <- cbind(incidence, size - incidence) ~ period + (1 | herd)
ticks_f <- TICKS ~ YEAR + cHEIGHT + (1 | BROOD)
cases <- list(
  list(name = "cbpp_cloglog", data = "cbpp", formula = cbpp_f, family = binomial("cloglog")),
  list(name = "cbpp_cauchit", data = "cbpp", formula = cbpp_f, family = binomial("cauchit")),
  list(name = "cbpp_log", data = "cbpp", formula = cbpp_f, family = binomial("log")),
  list(name = "ticks_sqrt", data = "grouseticks", formula = ticks_f, family = poisson("sqrt")),
  # lme4 stops on grouseticks with the identity link ("PIRLS loop resulted in NaN value");
  # a simulated data set with means well above 0 (poisson_identity_data.csv, made once
  # with numpy, seed 13) it fits
  list(name = "ticks_identity", data = "grouseticks", formula = TICKS ~ cHEIGHT + (1 | BROOD),
       family = poisson("identity")),
  list(name = "simulated_identity", data = "poisson_identity_data.csv",
       formula = y ~ x + (1 | g), family = poisson("identity")),
  list(name = "simulated_sqrt", data = "poisson_identity_data.csv",
       formula = y ~ x + (1 | g), family = poisson("sqrt")),
  list(name = "ticks_observation_level", data = "grouseticks",
       formula = TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
       family = poisson("log"))
)
res <- list()
for (case in cases) {
  d <- if (grepl("csv$", case$data)) read.csv(file.path(out, case$data)) else get(case$data)
  m <- tryCatch(glmer(case$formula, data = d, family = case$family),
                error = function(e) conditionMessage(e))
  if (is.character(m)) {  # lme4 could not fit it: the reason is the reference
    res[[case$name]] <- list(data = case$data, error = m,
      formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
      family = case$family$family, link = case$family$link)
    next
  }
  res[[case$name]] <- list(
    data = case$data,
    formula = paste(deparse(case$formula, width.cutoff = 500), collapse = " "),
    family = case$family$family, link = case$family$link,
    fixef = as.list(fixef(m)),
    std_error = as.numeric(sqrt(diag(as.matrix(vcov(m, use.hessian = FALSE))))),
    theta = as.numeric(getME(m, "theta")),
    logLik = as.numeric(logLik(m)),
    fitted = as.numeric(fitted(m)),
    warnings = m@optinfo$conv$lme4$messages
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE, null = "null"),
           file.path(out, "glmm_links.json"))
