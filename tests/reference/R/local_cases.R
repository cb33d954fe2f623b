# Reference fits made for mixedtf's own tests (not part of the shared oracle):
#   Rscript tests/reference/R/local_cases.R tests/reference/local
# R 4.x with ordinal 2022.11-16 and lme4 from Debian's r-cran-* packages.
suppressPackageStartupMessages({library(ordinal); library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
dig <- 15

clmm_case <- function(name, call, nAGQ) {
  fit <- eval(call)
  s <- summary(fit)
  co <- coef(s)
  res <- list(
    case_id = name,
    r_call = paste(deparse(call), collapse = " "),
    software = list(R = R.version.string, ordinal = as.character(packageVersion("ordinal"))),
    beta = as.list(fit$beta),
    alpha = as.list(fit$alpha),
    std_error = as.list(co[, "Std. Error"]),
    stDev = as.list(unlist(fit$ST)),
    judge_sd = as.numeric(VarCorr(fit)$judge)^0.5,
    logLik = as.numeric(logLik(fit)),
    nobs = nobs(fit),
    nAGQ = nAGQ
  )
  writeLines(toJSON(res, digits = dig, auto_unbox = TRUE, pretty = TRUE),
             file.path(out, paste0(name, ".json")))
}
clmm_case("wine_clmm_laplace",
          quote(clmm(rating ~ temp + contact + (1 | judge), data = wine)), 1)
clmm_case("wine_clmm_agq10",
          quote(clmm(rating ~ temp + contact + (1 | judge), data = wine, nAGQ = 10)), 10)

glmer_case <- function(name, call) {
  fit <- eval(call)
  vc <- as.data.frame(VarCorr(fit))
  res <- list(
    case_id = name,
    r_call = paste(deparse(call), collapse = " "),
    software = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
    fixed_effects = as.list(fixef(fit)),
    std_error = as.list(sqrt(diag(as.matrix(vcov(fit, use.hessian = FALSE))))),
    sd = setNames(as.list(vc$sdcor), vc$grp),
    logLik = as.numeric(logLik(fit)),
    # lme4's default PIRLS tolerance (tolPwrss = 1e-7) leaves the modes short of convergence
    # on this model (logLik 0.006 low); the same deviance function with tolPwrss = 1e-12, at
    # the fitted parameters, and the refit with that tolerance:
    logLik_tight_pirls_at_fit = -0.5 * update(fit, devFunOnly = TRUE,
      control = glmerControl(tolPwrss = 1e-12))(c(getME(fit, "theta"), fixef(fit))),
    logLik_tight_pirls_refit = as.numeric(logLik(update(fit,
      control = glmerControl(tolPwrss = 1e-12)))),
    nobs = nobs(fit)
  )
  writeLines(toJSON(res, digits = dig, auto_unbox = TRUE, pretty = TRUE),
             file.path(out, paste0(name, ".json")))
}
glmer_case("grouseticks_poisson_laplace",
           quote(glmer(TICKS ~ YEAR + (1 | BROOD) + (1 | LOCATION),
                       family = poisson, data = grouseticks)))
