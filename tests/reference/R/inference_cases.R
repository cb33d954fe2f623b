# Inference after the fit (issue 14): coef, isSingular, Wald intervals, anova of several
# models, drop1, R2 and ICC:
#   Rscript tests/reference/R/inference_cases.R tests/reference/local
# R 4.x, lme4, performance from Debian's r-cran-* packages.
suppressPackageStartupMessages({library(lme4); library(performance); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
m <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
ci <- confint(m, method = "Wald", oldNames = FALSE)
m0 <- lmer(Reaction ~ 1 + (1 | Subject), sleepstudy)
m1 <- lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
m2 <- lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
a <- anova(m0, m1, m2)                                   # refits the REML fits with ML
d1 <- drop1(lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE), test = "Chisq")
pastes <- lmer(strength ~ 1 + (1 | batch) + (1 | cask:batch), Pastes)
r2 <- r2_nakagawa(m)
ic <- icc(m)
r2i <- r2_nakagawa(m1)
ici <- icc(m1)
res <- list(
  coef_Subject = as.data.frame(coef(m)$Subject),         # coef(m)$Subject
  wald = list(rows = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2])),
  singular_sleep = isSingular(m), singular_pastes = isSingular(pastes),
  pastes_formula = "strength ~ 1 + (1 | batch) + (1 | cask:batch)",
  anova = list(npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik,
               deviance = a$deviance, Chisq = a$Chisq, Df = a$Df, p = a[["Pr(>Chisq)"]]),
  drop1 = list(rows = rownames(d1), Df = d1$Df, AIC = d1$AIC, LRT = d1$LRT,
               p = d1[["Pr(Chi)"]]),
  r2_slope = list(marginal = r2$R2_marginal, conditional = r2$R2_conditional,
                  icc_adjusted = ic$ICC_adjusted, icc_unadjusted = ic$ICC_unadjusted),
  r2_intercept = list(marginal = r2i$R2_marginal, conditional = r2i$R2_conditional,
                      icc_adjusted = ici$ICC_adjusted, icc_unadjusted = ici$ICC_unadjusted),
  software = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  performance = as.character(packageVersion("performance")))
)
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           file.path(out, "inference.json"))

# R2 and ICC of binomial GLMMs (the logit's distribution-specific variance pi^2 / 3)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial)
b <- glmer(r2 ~ Anger + Gender + (1 | id), VerbAgg, binomial)
glmm <- list()
for (nm in c("cbpp", "verbagg")) {
  fit <- if (nm == "cbpp") g else b
  r <- r2_nakagawa(fit); i <- icc(fit)
  glmm[[nm]] <- list(marginal = r$R2_marginal, conditional = r$R2_conditional,
                     icc_adjusted = i$ICC_adjusted, icc_unadjusted = i$ICC_unadjusted)
}
writeLines(toJSON(glmm, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "r2_glmm.json"))
