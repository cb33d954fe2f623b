# Reference values for the tests of the estimators' structure and results (issue 12):
#   Rscript tests/reference/R/structure_cases.R tests/reference/local
# R 4.x with lme4 from Debian's r-cran-* packages.
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
dig <- 15
write_case <- function(name, res) {
  res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
  writeLines(toJSON(res, digits = dig, auto_unbox = TRUE, pretty = TRUE),
             file.path(out, paste0(name, ".json")))
}

# binomial with the probit link: likelihood, vcov, fitted values and predictions
call <- quote(glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    data = cbpp, family = binomial(link = "probit")))
fit <- eval(call)
write_case("cbpp_probit_laplace", list(
  case_id = "cbpp_probit_laplace",
  r_call = paste(deparse(call), collapse = " "),
  fixed_effects = as.list(fixef(fit)),
  std_error = as.list(sqrt(diag(as.matrix(vcov(fit))))),  # lme4's default: the Hessian
  std_error_rx = as.list(sqrt(diag(as.matrix(vcov(fit, use.hessian = FALSE))))),
  theta = as.numeric(getME(fit, "theta")),
  logLik = as.numeric(logLik(fit)),
  fitted = as.numeric(fitted(fit)),                       # Phi(eta), per row
  predict_link = as.numeric(predict(fit)),                # eta
  predict_population = as.numeric(predict(fit, re.form = NA, type = "response"))
))

# anova of nested ML fits, and the z-based p-values of a REML fit
m0 <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
m1 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)
a <- anova(m0, m1)
m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
tval <- coef(summary(m))[, "t value"]
write_case("sleepstudy_anova_ML", list(
  case_id = "sleepstudy_anova_ML",
  r_call = "anova(lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE), lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE))",
  npar = as.numeric(a$npar), AIC = as.numeric(a$AIC), BIC = as.numeric(a$BIC),
  logLik = as.numeric(a$logLik), deviance = as.numeric(a$deviance),
  Chisq = as.numeric(a$Chisq[2]), Df = as.numeric(a$Df[2]),
  p_value = as.numeric(a[["Pr(>Chisq)"]][2]),
  reml_wald_p_value = as.list(2 * pnorm(-abs(tval)))   # 2 * pnorm(-|t|) of lmer's REML fit
))
