# R2 and ICC (Nakagawa & Schielzeth) of Poisson, negative binomial, Gamma and inverse
# Gaussian GLMMs as performance computes them (issue 14, item 5):
#   Rscript tests/reference/R/r2_count_cases.R tests/reference/local
# performance 0.10.2 / insight 0.19.0: log-link count models take the distribution-specific
# variance log1p(V(mu) / mu^2) with mu = exp(intercept of the null model y ~ 1 + random
# terms, refitted), Gamma takes sigma(m)^2, other families sigma(m).
suppressPackageStartupMessages({library(lme4); library(MASS); library(performance);
                                library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
if (is.na(out)) out <- "."
grouseticks$cHEIGHT <- grouseticks$HEIGHT - mean(grouseticks$HEIGHT)
gd <- read.csv(file.path(out, "gamma_data.csv"))
fits <- list(
  poisson_ticks = list(data = "grouseticks", family = "poisson",
    m = glmer(TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION), grouseticks, poisson)),
  nb_ticks = list(data = "grouseticks", family = "negative_binomial",
    m = glmer.nb(TICKS ~ YEAR + cHEIGHT + (1 | BROOD), grouseticks)),
  gamma_log = list(data = "gamma_data.csv", family = "gamma",
    m = glmer(y_gamma ~ x + (1 | g), gd, Gamma("log"))),
  gamma_inverse = list(data = "gamma_data.csv", family = "gamma",
    m = glmer(y_gamma ~ x + (1 | g), gd, Gamma("inverse"))),
  ig_log = list(data = "gamma_data.csv", family = "inverse_gaussian",
    m = glmer(y_ig ~ x + (1 | g), gd, inverse.gaussian("log")))
)
res <- list()
for (nm in names(fits)) {
  m <- fits[[nm]]$m
  r <- suppressWarnings(r2_nakagawa(m)); i <- suppressWarnings(icc(m))
  v <- suppressWarnings(insight::get_variance(m))
  m0 <- suppressWarnings(insight::null_model(m))
  res[[nm]] <- list(
    data = fits[[nm]]$data, family = fits[[nm]]$family,
    link = family(m)$link,
    formula = paste(deparse(formula(m), width.cutoff = 500), collapse = " "),
    marginal = r$R2_marginal, conditional = r$R2_conditional,          # r2_nakagawa(m)
    icc_adjusted = i$ICC_adjusted, icc_unadjusted = i$ICC_unadjusted,  # icc(m)
    var_fixed = v$var.fixed, var_random = v$var.random,                # insight::get_variance(m)
    var_distribution = v$var.distribution,
    sigma = sigma(m), nb_theta = if (nm == "nb_ticks") getME(m, "glmer.nb.theta") else NULL,
    null_intercept = unname(fixef(m0)[1]),                             # insight::null_model(m)
    null_logLik = as.numeric(logLik(m0)), logLik = as.numeric(logLik(m))
  )
}
res$software <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                     performance = as.character(packageVersion("performance")),
                     insight = as.character(packageVersion("insight")))
writeLines(toJSON(res, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           file.path(out, "r2_count.json"))
